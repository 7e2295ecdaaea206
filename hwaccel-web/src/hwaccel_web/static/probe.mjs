// What the browser offers hwaccel's web backend: WebGPU, WebNN and WebAssembly, each with the
// browser's own answer (an adapter, a context, or the error it raised).

const LIMITS = [
  "maxBufferSize", "maxStorageBufferBindingSize", "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ", "maxComputeWorkgroupsPerDimension", "maxStorageBuffersPerShaderStage",
  "maxBindGroups",
];
const WEBNN_DEVICE_TYPES = ["cpu", "gpu", "npu"];
// Minimal modules from wasm-feature-detect: one SIMD instruction; one atomic on shared memory.
const SIMD_MODULE = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8,
  0, 65, 0, 253, 15, 253, 98, 11];
const THREADS_MODULE = [0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1,
  1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11];

function describe(error) {
  return error && error.name ? `${error.name}: ${error.message}` : String(error);
}

async function probeWebGPU() {
  if (!("gpu" in navigator)) {
    return { available: false, reason: "navigator.gpu is undefined (no WebGPU in this browser)" };
  }
  let adapter;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (error) {
    return { available: false, reason: `navigator.gpu.requestAdapter() failed: ${describe(error)}` };
  }
  if (!adapter) {
    return { available: false, reason: "navigator.gpu.requestAdapter() returned null (no adapter)" };
  }
  const info = adapter.info || {};
  const limits = {};
  for (const name of LIMITS) {
    if (adapter.limits[name] !== undefined) limits[name] = adapter.limits[name];
  }
  return {
    available: true,
    vendor: info.vendor || "", architecture: info.architecture || "",
    device: info.device || "", description: info.description || "",
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    features: [...adapter.features].sort(), limits,
  };
}

async function probeWebNN() {
  if (!("ml" in navigator)) {
    return { available: false, reason: "navigator.ml is undefined (no WebNN in this browser)" };
  }
  const contexts = {};
  for (const deviceType of WEBNN_DEVICE_TYPES) {
    try {
      const context = await navigator.ml.createContext({ deviceType });
      const limits = typeof context.opSupportLimits === "function" ? context.opSupportLimits() : {};
      contexts[deviceType] = { ok: true, operators: Object.keys(limits).length };
    } catch (error) {
      contexts[deviceType] = { ok: false, error: describe(error) };
    }
  }
  const working = WEBNN_DEVICE_TYPES.filter((d) => contexts[d].ok);
  const reason = working.length ? null : "navigator.ml.createContext() failed for every device " +
    "type: " + WEBNN_DEVICE_TYPES.map((d) => `${d}: ${contexts[d].error}`).join("; ");
  return { available: working.length > 0, reason, contexts, deviceTypes: working };
}

function probeWasm() {
  if (typeof WebAssembly !== "object") {
    return { available: false, reason: "WebAssembly is undefined in this browser" };
  }
  const simd = WebAssembly.validate(new Uint8Array(SIMD_MODULE));
  let threads = false;
  let threadsReason = null;
  if (typeof SharedArrayBuffer === "undefined" || !crossOriginIsolated) {
    threadsReason = "SharedArrayBuffer needs a cross-origin isolated page";
  } else {
    try {
      new MessageChannel().port1.postMessage(new SharedArrayBuffer(1));
      threads = WebAssembly.validate(new Uint8Array(THREADS_MODULE));
      if (!threads) threadsReason = "the browser rejects WebAssembly atomics";
    } catch (error) {
      threadsReason = describe(error);
    }
  }
  return { available: true, simd, threads, threadsReason };
}

export async function probe() {
  return {
    userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency,
    crossOriginIsolated,
    webgpu: await probeWebGPU(),
    webnn: await probeWebNN(),
    wasm: probeWasm(),
  };
}
