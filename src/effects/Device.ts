import { Context, Layer } from "effect"
import type { KernelProvider } from "../kernels/provider.ts"

/** The kernel provider (and its memory) a rank computes with. */
export class Device extends Context.Tag("Tessera/Device")<Device, KernelProvider>() {
  static readonly layer = (provider: KernelProvider) => Layer.succeed(Device, provider)
}
