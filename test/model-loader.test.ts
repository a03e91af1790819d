import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { ModelLoadError } from "../src/model/errors.ts"
import { openSafetensors, parseSafetensors } from "../src/model/safetensors.ts"
import { copyAsFloat32, halfBitsToFloatBits } from "../src/model/tensorConvert.ts"
import { loadModelDir, openModelDir } from "../src/model/weights.ts"
import { bf16Bits, bitsTensor, encodeSafetensors, f32Tensor, writeSafetensors } from "./helpers/safetensorsWriter.ts"
import { tinyLlamaConfig, tinyValue, writeTinyModel } from "./helpers/tinyModel.ts"

const dirs: string[] = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-model-"))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** Runs `f`, expecting a ModelLoadError about `path` whose message contains every fragment. */
const expectLoadError = (f: () => unknown, path: string, ...fragments: string[]) => {
  let caught: unknown
  try {
    f()
  } catch (e) {
    caught = e
  }
  expect(caught).toBeInstanceOf(ModelLoadError)
  const error = caught as ModelLoadError
  expect(error._tag).toBe("ModelLoadError")
  expect(error.path).toBe(path)
  expect(error.message).toContain(path)
  for (const fragment of fragments) expect(error.message).toContain(fragment)
}

const bitsOf = (values: Float32Array) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length))

/** binary16 value from its fields, in float64: the definition, not a bit trick. */
const halfValue = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exponent = (h >> 10) & 0x1f
  const mantissa = h & 0x3ff
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN
  if (exponent === 0) return sign * mantissa * 2 ** -24
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024)
}

describe("safetensors values", () => {
  it("round-trips F32 bit for bit, including -0, subnormals and infinities", () => {
    const path = join(tempDir(), "f32.safetensors")
    const values = Float32Array.of(0, -0, 1.5, -2.25, 3.4e38, 1e-45, Infinity, -Infinity, NaN)
    writeSafetensors(path, { t: f32Tensor([3, 3], values) })
    const dst = new Float32Array(9)
    openSafetensors(path).readInto("t", dst)
    expect(bitsOf(dst)).toEqual(bitsOf(values))
  })

  it("widens BF16 to the f32 whose top half it is", () => {
    const path = join(tempDir(), "bf16.safetensors")
    // 1, -2.5, 2^-133 (the smallest bf16 subnormal), +-inf, -0, 3.140625, a NaN with payload
    const bits = [0x3f80, 0xc020, 0x0001, 0x7f80, 0xff80, 0x8000, 0x4049, 0x7fc1]
    writeSafetensors(path, { t: bitsTensor("BF16", [8], bits) })
    const dst = new Float32Array(8)
    openSafetensors(path).readInto("t", dst)
    expect(Array.from(dst.subarray(0, 7))).toEqual([1, -2.5, 2 ** -133, Infinity, -Infinity, -0, 3.140625])
    expect(bitsOf(dst)[7]).toBe(0x7fc10000)
    expect(bf16Bits(3.14159)).toBe(0x4049) // the test writer rounds to nearest
  })

  it("widens F16 exactly: normals, subnormals, max, infinities", () => {
    const path = join(tempDir(), "f16.safetensors")
    const bits = [0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8001, 0x0400, 0x7c00, 0xfc00, 0x3555]
    writeSafetensors(path, { t: bitsTensor("F16", [2, 6], bits) })
    const dst = new Float32Array(12)
    openSafetensors(path).readInto("t", dst)
    expect(Array.from(dst)).toEqual(bits.map(halfValue))
    expect(dst[5]).toBe(2 ** -24)
    expect(dst[4]).toBe(65504)
  })

  it("converts every F16 bit pattern exactly without Float16Array, and agrees with it where Bun has it", () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, h) => h)
    const manual = new Float32Array(65536)
    copyAsFloat32({ dtype: "F16", bits, half: null }, 0, manual, 0, 65536)
    const wrong: string[] = []
    for (let h = 0; h < 65536; h++) {
      const expected = halfValue(h)
      const ok = Number.isNaN(expected)
        ? // quiet bit and payload move up by 13 bits
          Number.isNaN(manual[h]!) && (halfBitsToFloatBits(h) & 0x7fffff) === (h & 0x3ff) << 13
        : Object.is(manual[h], expected)
      if (!ok) wrong.push(`0x${h.toString(16)}: ${manual[h]} != ${expected}`)
    }
    expect(wrong.slice(0, 5)).toEqual([])
    if (typeof Float16Array === "function") {
      const native = new Float32Array(65536)
      copyAsFloat32({ dtype: "F16", bits, half: new Float16Array(bits.buffer) }, 0, native, 0, 65536)
      const differ = [...bits].filter((h) => !Number.isNaN(manual[h]!) && !Object.is(native[h], manual[h]))
      expect(differ).toEqual([])
    }
  })
})

describe("safetensors slices", () => {
  // value = row * 10 + column, so a slice shows where it came from
  const grid = (rows: number, cols: number) => Array.from({ length: rows * cols }, (_, i) => Math.floor(i / cols) * 10 + (i % cols))
  const file = () => {
    const path = join(tempDir(), "grid.safetensors")
    writeSafetensors(path, {
      f32: f32Tensor([4, 6], grid(4, 6)),
      bf16: bitsTensor("BF16", [4, 6], grid(4, 6).map(bf16Bits)),
      bias: f32Tensor([6], [0, 1, 2, 3, 4, 5]),
    })
    return openSafetensors(path)
  }

  it("reads a row range (a column-parallel shard)", () => {
    const dst = new Float32Array(12)
    file().readInto("f32", dst, [1, 3])
    expect(Array.from(dst)).toEqual([10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25])
  })

  it("reads a column range (a row-parallel shard), from F32 and BF16", () => {
    for (const name of ["f32", "bf16"]) {
      const dst = new Float32Array(12)
      file().readInto(name, dst, undefined, [2, 5])
      expect(Array.from(dst)).toEqual([2, 3, 4, 12, 13, 14, 22, 23, 24, 32, 33, 34])
    }
  })

  it("reads a block of rows and columns, and a slice of a 1-D bias", () => {
    const st = file()
    const block = new Float32Array(4)
    st.readInto("bf16", block, [2, 4], [4, 6])
    expect(Array.from(block)).toEqual([24, 25, 34, 35])
    const bias = new Float32Array(3)
    st.readInto("bias", bias, [3, 6])
    expect(Array.from(bias)).toEqual([3, 4, 5])
  })

  it("rejects bad ranges and a destination of the wrong size, naming the tensor", () => {
    const st = file()
    expectLoadError(() => st.readInto("f32", new Float32Array(6), [3, 5]), st.path, `"f32"`, "row range [3, 5)")
    expectLoadError(() => st.readInto("bias", new Float32Array(2), undefined, [0, 2]), st.path, `"bias"`, "2-D")
    expectLoadError(() => st.readInto("f32", new Float32Array(5), [0, 1]), st.path, `"f32"`, "destination holds 5")
  })

  it("gives zero-copy views of the file's bytes", () => {
    const st = file()
    const view = st.elements("f32") as Float32Array
    expect(view).toBeInstanceOf(Float32Array)
    expect(Array.from(view.subarray(6, 8))).toEqual([10, 11])
    expect(st.rawBytes("bf16").length).toBe(4 * 6 * 2)
    expect(st.elements("bf16")).toBeInstanceOf(Uint16Array)
  })
})

describe("safetensors errors name the file and the problem", () => {
  const valid = () => encodeSafetensors({ a: f32Tensor([4], [1, 2, 3, 4]), b: f32Tensor([2], [5, 6]) }, { format: "pt" })

  it("truncated file", () => {
    const path = join(tempDir(), "truncated.safetensors")
    const bytes = valid()
    writeFileSync(path, bytes.subarray(0, bytes.length - 4))
    expectLoadError(() => openSafetensors(path), path, `tensor "b"`, "truncated")
  })

  it("header length past the end of the file", () => {
    const path = join(tempDir(), "header.safetensors")
    const bytes = valid()
    new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true)
    writeFileSync(path, bytes)
    expectLoadError(() => openSafetensors(path), path, `header length ${bytes.length} runs past the end`)
  })

  it("file shorter than the length prefix, and an empty file", () => {
    const path = join(tempDir(), "tiny.safetensors")
    writeFileSync(path, new Uint8Array(5))
    expectLoadError(() => openSafetensors(path), path, "5 bytes", "too short")
    writeFileSync(path, new Uint8Array(0))
    expectLoadError(() => openSafetensors(path), path, "0 bytes")
  })

  it("header that is not JSON", () => {
    const bytes = new Uint8Array(8 + 4)
    new DataView(bytes.buffer).setBigUint64(0, 4n, true)
    bytes.set(new TextEncoder().encode("{oop"), 8)
    expectLoadError(() => parseSafetensors("x.safetensors", bytes), "x.safetensors", "not valid JSON")
  })

  it("offsets inconsistent with dtype and shape, overlapping tensors, unknown dtype", () => {
    const image = (header: object, dataBytes: number) => {
      const json = new TextEncoder().encode(JSON.stringify(header))
      const bytes = new Uint8Array(8 + json.length + dataBytes)
      new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true)
      bytes.set(json, 8)
      return bytes
    }
    expectLoadError(
      () => parseSafetensors("s.safetensors", image({ w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, 16)),
      "s.safetensors",
      `tensor "w"`,
      "span 12 bytes but F32 [2, 2] needs 16",
    )
    const overlapping = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }
    expectLoadError(() => parseSafetensors("o.safetensors", image(overlapping, 12)), "o.safetensors", `"a" and "b" overlap`)
    expectLoadError(
      () => parseSafetensors("d.safetensors", image({ w: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, 1)),
      "d.safetensors",
      `tensor "w"`,
      `unknown dtype "Q4"`,
    )
  })

  it("a dtype the loader cannot widen, named with its tensor", () => {
    const path = join(tempDir(), "int.safetensors")
    writeSafetensors(path, { ids: { dtype: "I64", shape: [2], data: new Uint8Array(16) } })
    const st = openSafetensors(path)
    expect(st.entry("ids").dtype).toBe("I64")
    expectLoadError(() => st.readInto("ids", new Float32Array(2)), path, `tensor "ids" has dtype I64`)
  })

  it("missing file and missing tensor", () => {
    const path = join(tempDir(), "absent.safetensors")
    expectLoadError(() => openSafetensors(path), path, "file not found")
    writeSafetensors(path, { a: f32Tensor([1], [1]) })
    expectLoadError(() => openSafetensors(path).readInto("b", new Float32Array(1)), path, `no tensor named "b"`)
  })
})

describe("model directory", () => {
  it("opens a single-file checkpoint and reads tensors as written", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig())
    const model = openModelDir(dir)
    expect(model.config.architecture).toBe("LlamaForCausalLM")
    expect(model.generationConfig).toBeNull()
    expect(model.weights.info("model.layers.1.self_attn.k_proj.weight")).toEqual({
      dtype: "BF16",
      shape: [4, 8],
      file: join(dir, "model.safetensors"),
    })
    // embed_tokens is tensor 0, lm_head the last (index 2 + 2 layers * 9 tensors)
    const head = new Float32Array(16 * 8)
    model.weights.readInto("lm_head.weight", head)
    expect(Array.from(head.subarray(0, 5))).toEqual([0, 1, 2, 3, 4].map((i) => tinyValue(20, i)))
  })

  it("opens a sharded checkpoint through its index, reading the same values", () => {
    const single = tempDir()
    const sharded = tempDir()
    writeTinyModel(single, tinyLlamaConfig())
    writeTinyModel(sharded, tinyLlamaConfig(), { shards: 3 })
    const a = openModelDir(single).weights
    const b = openModelDir(sharded).weights
    expect([...b.names()].sort()).toEqual([...a.names()].sort())
    expect(b.info("model.embed_tokens.weight").file).toBe(join(sharded, "model-00001-of-00003.safetensors"))
    expect(b.info("lm_head.weight").file).toBe(join(sharded, "model-00003-of-00003.safetensors"))
    for (const name of a.names()) {
      const n = a.info(name).shape.reduce((x, y) => x * y, 1)
      const x = new Float32Array(n)
      const y = new Float32Array(n)
      a.readInto(name, x)
      b.readInto(name, y)
      expect(y).toEqual(x)
    }
  })

  it("reads generation_config.json when present", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig())
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [2, 9], temperature: 0.6, top_p: 0.9 }))
    const { generationConfig } = openModelDir(dir)
    expect(generationConfig?.eosTokenIds).toEqual([2, 9])
    expect(generationConfig?.temperature).toBe(0.6)
    expect(generationConfig?.topP).toBe(0.9)
    expect(generationConfig?.topK).toBeUndefined()
  })

  it("tensor of the wrong shape: names the file, the tensor, expected and actual shapes", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig(), { shapeOverrides: { "model.layers.1.mlp.up_proj.weight": [12, 4] } })
    expectLoadError(
      () => openModelDir(dir),
      join(dir, "model.safetensors"),
      `tensor "model.layers.1.mlp.up_proj.weight" has shape [12, 4], expected [12, 8]`,
    )
  })

  it("missing tensor: names the checkpoint and the tensor", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig(), { omit: ["model.layers.0.self_attn.v_proj.weight"] })
    expectLoadError(
      () => openModelDir(dir),
      join(dir, "model.safetensors"),
      `missing tensor "model.layers.0.self_attn.v_proj.weight" (expected shape [4, 8])`,
    )
  })

  it("tied embeddings need no lm_head; untied ones do", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig({ tie_word_embeddings: true }))
    expect(openModelDir(dir).weights.has("lm_head.weight")).toBe(false)
    writeFileSync(join(dir, "config.json"), JSON.stringify(tinyLlamaConfig()))
    expectLoadError(() => openModelDir(dir), join(dir, "model.safetensors"), `missing tensor "lm_head.weight"`)
  })

  it("unknown architecture: names config.json and the field", () => {
    const dir = tempDir()
    writeFileSync(join(dir, "config.json"), JSON.stringify(tinyLlamaConfig({ architectures: ["GPT2LMHeadModel"] })))
    expectLoadError(() => openModelDir(dir), join(dir, "config.json"), `"architectures"`, `"GPT2LMHeadModel"`)
  })

  it("missing config.json, missing directory, missing weights", () => {
    const dir = tempDir()
    expectLoadError(() => openModelDir(dir), join(dir, "config.json"), "file not found")
    expectLoadError(() => openModelDir(join(dir, "nope")), join(dir, "nope"), "model directory not found")
    writeFileSync(join(dir, "config.json"), JSON.stringify(tinyLlamaConfig()))
    expectLoadError(() => openModelDir(dir), dir, "no model.safetensors or model.safetensors.index.json")
  })

  it("missing shard: names the shard and the index", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig(), { shards: 2 })
    const shard = join(dir, "model-00002-of-00002.safetensors")
    rmSync(shard)
    expectLoadError(() => openModelDir(dir), shard, "listed in model.safetensors.index.json", "missing")
  })

  it("index naming a tensor its shard lacks", () => {
    const dir = tempDir()
    writeTinyModel(dir, tinyLlamaConfig(), { shards: 2 })
    const indexPath = join(dir, "model.safetensors.index.json")
    const index = JSON.parse(readFileSync(indexPath, "utf8"))
    index.weight_map["model.norm.weight"] = "model-00001-of-00002.safetensors"
    writeFileSync(indexPath, JSON.stringify(index))
    expectLoadError(
      () => openModelDir(dir),
      join(dir, "model-00001-of-00002.safetensors"),
      `tensor "model.norm.weight" is listed in model.safetensors.index.json but not in this shard`,
    )
  })

  it("loadModelDir fails as an Effect with the same error", () => {
    const dir = tempDir()
    const exit = Effect.runSyncExit(loadModelDir(dir))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
      expect(exit.cause.error).toBeInstanceOf(ModelLoadError)
      expect(exit.cause.error.path).toBe(join(dir, "config.json"))
    } else {
      throw new Error("expected a Fail cause")
    }
  })
})
