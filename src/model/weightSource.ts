import { existsSync } from "node:fs"
import { join } from "node:path"
import { Schema } from "effect"
import type { ModelConfig } from "./config.ts"
import { loadError } from "./errors.ts"
import { decodeOrThrow, readJsonFile } from "./jsonFile.ts"
import { type IndexRange, openSafetensors, type SafetensorsFile } from "./safetensors.ts"
import { isLoadableDtype } from "./tensorConvert.ts"
import { expectedTensors } from "./expectedTensors.ts"

/**
 * The checkpoint's tensors by name, whichever files hold them: a single
 * model.safetensors, or shards listed in model.safetensors.index.json.
 */

export interface TensorInfo {
  readonly dtype: string
  readonly shape: readonly number[]
  /** The safetensors file holding the tensor. */
  readonly file: string
}

export interface WeightSource {
  names(): readonly string[]
  has(name: string): boolean
  info(name: string): TensorInfo
  /** The tensor's bytes as stored, a view over the file (for uploading BF16 as is). */
  rawBytes(name: string): Uint8Array
  /**
   * Converts the tensor, or a block of it, to float32 into `dst`: `rows` slices the
   * first dimension (column-parallel shards), `cols` the second (row-parallel shards).
   */
  readInto(name: string, dst: Float32Array, rows?: IndexRange, cols?: IndexRange): void
  /** Checks every tensor the config needs is present, loadable, and of the right shape. */
  validate(config: ModelConfig): void
}

export const SINGLE_FILE = "model.safetensors"
export const INDEX_FILE = "model.safetensors.index.json"

const ShardIndex = Schema.Struct({
  weight_map: Schema.Record({ key: Schema.String, value: Schema.String }),
})

/** Opens the checkpoint in `dir`, preferring a single file over an index. */
export function openWeights(dir: string): WeightSource {
  const single = join(dir, SINGLE_FILE)
  if (existsSync(single)) {
    const file = openSafetensors(single)
    return new SafetensorsWeights(single, new Map([...file.tensors.keys()].map((name) => [name, file])))
  }
  const indexPath = join(dir, INDEX_FILE)
  if (!existsSync(indexPath)) throw loadError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE} in this directory`)
  const { weight_map: weightMap } = decodeOrThrow(ShardIndex, readJsonFile(indexPath), indexPath)

  const shards = new Map<string, SafetensorsFile>()
  const byTensor = new Map<string, SafetensorsFile>()
  for (const [name, shardName] of Object.entries(weightMap)) {
    let shard = shards.get(shardName)
    if (shard === undefined) {
      const shardPath = join(dir, shardName)
      if (!existsSync(shardPath)) throw loadError(shardPath, `shard listed in ${INDEX_FILE} is missing`)
      shard = openSafetensors(shardPath)
      shards.set(shardName, shard)
    }
    if (!shard.tensors.has(name)) {
      throw loadError(shard.path, `tensor "${name}" is listed in ${INDEX_FILE} but not in this shard`)
    }
    byTensor.set(name, shard)
  }
  return new SafetensorsWeights(indexPath, byTensor)
}

class SafetensorsWeights implements WeightSource {
  /** `checkpoint` is model.safetensors or the index: where a missing tensor is missing from. */
  constructor(
    private readonly checkpoint: string,
    private readonly files: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  names(): readonly string[] {
    return [...this.files.keys()]
  }

  has(name: string): boolean {
    return this.files.has(name)
  }

  info(name: string): TensorInfo {
    const file = this.fileOf(name)
    const { dtype, shape } = file.entry(name)
    return { dtype, shape, file: file.path }
  }

  rawBytes(name: string): Uint8Array {
    return this.fileOf(name).rawBytes(name)
  }

  readInto(name: string, dst: Float32Array, rows?: IndexRange, cols?: IndexRange): void {
    this.fileOf(name).readInto(name, dst, rows, cols)
  }

  validate(config: ModelConfig): void {
    for (const expected of expectedTensors(config)) {
      const file = this.files.get(expected.name)
      if (file === undefined) {
        throw loadError(this.checkpoint, `missing tensor "${expected.name}" (expected shape [${expected.shape.join(", ")}])`)
      }
      const { dtype, shape } = file.entry(expected.name)
      if (shape.length !== expected.shape.length || shape.some((d, i) => d !== expected.shape[i])) {
        throw loadError(
          file.path,
          `tensor "${expected.name}" has shape [${shape.join(", ")}], expected [${expected.shape.join(", ")}]`,
        )
      }
      if (!isLoadableDtype(dtype)) {
        throw loadError(file.path, `tensor "${expected.name}" has dtype ${dtype}; only BF16, F16 and F32 can be loaded`)
      }
    }
  }

  private fileOf(name: string): SafetensorsFile {
    const file = this.files.get(name)
    if (file === undefined) throw loadError(this.checkpoint, `no tensor named "${name}"`)
    return file
  }
}
