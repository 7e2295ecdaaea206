// Runs one ONNX model with onnxruntime-web in this page, on exactly one execution provider.
// Tensors cross to and from Python as base64 of their raw little-endian bytes. Each run is
// timed in the page with performance.now() around session.run(), which resolves once the
// outputs are read back to the CPU: the time of one call including the device's work.

let ort = null;
let ep = null;
let runtimeStarted = null;
let session = null;
let feeds = null;
let feedsKey = null;

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, uint16: Uint16Array,
  float16: Uint16Array,
};

function decode(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes.buffer;
}

function encode(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

// Start onnxruntime-web on one provider without waiting for it: load the runtime and create
// a first session from a one-operator model (compiling the WebAssembly, starting its threads
// and the provider's device). load() waits for it; a failure is thrown there.
export function start({ ortUrl, wasmPaths, provider, threads, webnnDeviceType, starterModel }) {
  runtimeStarted = (async () => {
    const begun = performance.now();
    ort = await import(ortUrl);
    ort.env.wasm.wasmPaths = wasmPaths;
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = "warning";
    ep = provider === "webnn" ? { name: "webnn", deviceType: webnnDeviceType } : provider;
    const starter = await ort.InferenceSession.create(new Uint8Array(decode(starterModel)), {
      executionProviders: [ep], logSeverityLevel: 2,
    });
    await starter.release();
    return performance.now() - begun;
  })();
  runtimeStarted.catch(() => {});  // reported by load()
  return true;
}

// Create the model's session once the runtime has started; resolves to what ran, or throws.
export async function load({ modelUrl }) {
  if (runtimeStarted === null) throw new Error("onnxruntime-web was not started");
  const startMs = await runtimeStarted;
  const begun = performance.now();
  session = await ort.InferenceSession.create(modelUrl, {
    executionProviders: [ep], graphOptimizationLevel: "all", logSeverityLevel: 2,
  });
  return {
    createMs: performance.now() - begun, startMs, ortVersion: ort.env.versions?.web ?? null,
    threads: ort.env.wasm.numThreads, inputNames: session.inputNames,
    outputNames: session.outputNames, crossOriginIsolated,
  };
}

// One timed call. `inputs` is null to reuse the previous call's tensors (same `key`).
export async function run({ key, inputs }) {
  if (session === null) throw new Error("no session: load() first");
  if (inputs !== null) {
    feeds = {};
    for (const [name, t] of Object.entries(inputs)) {
      const array = new ARRAYS[t.dtype](decode(t.data));
      feeds[name] = new ort.Tensor(t.dtype, array, t.dims);
    }
    feedsKey = key;
  } else if (key !== feedsKey) {
    throw new Error(`inputs ${key} were never sent`);
  }
  const started = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - started;
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) {
    outputs[name] = { dtype: tensor.type, dims: Array.from(tensor.dims), data: encode(tensor.data) };
  }
  return { ms, outputs };
}
