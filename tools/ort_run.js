#!/usr/bin/env node
// Drive ONNX Runtime (onnxruntime-node) for autotailor's checks and benchmarks.
//
//   node tools/ort_run.js run MODEL.onnx --input IN.pb [--input ...] --output OUT.pb [--output ...]
//   node tools/ort_run.js bench MODEL.onnx [MODEL.onnx ...] [--batch B] [--threads N] [--runs R] [--warmup W] [--rounds K] [--shape 1,3,224,224]
//   node tools/ort_run.js bundle BUNDLE_DIR --out RESULTS.csv [--threads N] [--min-ms 25] [--reference]
//   node tools/ort_run.js version
//
// `bundle` times every model of a bundle written by `autotailor profile DIR --device NAME
// --bundle BUNDLE_DIR` (BUNDLE_DIR/manifest.json) and writes the CSV that `autotailor profile
// DIR --device NAME --import RESULTS.csv` reads: id,median_ms,p10_ms,p90_ms,runs.
//
// Tensors are onnx.TensorProto files (the format of ONNX's backend test data). The only
// dependency is onnxruntime-node, so the protobuf handling below is a minimal reader and
// writer for the few message fields we need. Errors: one line on stderr, exit status 1.
'use strict';

const fs = require('fs');
const path = require('path');

const ORT_PATH = process.env.ORT_NODE_MODULE ||
  path.join(__dirname, '..', 'third_party', 'ort', 'node_modules', 'onnxruntime-node');

function loadOrt() {
  try {
    return require(ORT_PATH);
  } catch (e) {
    throw new Error(`cannot load onnxruntime-node from ${ORT_PATH} (run tools/setup.sh or set ORT_NODE_MODULE): ${e.message}`);
  }
}

// ---------------------------------------------------------------- protobuf wire format

// Reads varints as BigInt where needed (int64 dims / data); everything else as Number.
class Reader {
  constructor(buf, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  done() { return this.pos >= this.end; }

  varintBig() {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated protobuf varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7n;
      if (shift > 63n) throw new Error('malformed protobuf varint');
    }
    return result;
  }

  // int64 fields are two's complement in 64 bits.
  int64() { return BigInt.asIntN(64, this.varintBig()); }

  varint() {
    const v = this.int64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new Error(`protobuf integer ${v} out of range`);
    }
    return Number(v);
  }

  // Returns [fieldNumber, wireType] or null at the end.
  tag() {
    if (this.done()) return null;
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }

  // Returns [start, end) of a length-delimited payload and advances past it.
  bytes() {
    const len = this.varint();
    const start = this.pos;
    if (len < 0 || start + len > this.end) throw new Error('truncated protobuf field');
    this.pos += len;
    return [start, start + len];
  }

  skip(wireType) {
    switch (wireType) {
      case 0: this.varintBig(); break;
      case 1: this.pos += 8; break;
      case 2: this.bytes(); break;
      case 5: this.pos += 4; break;
      default: throw new Error(`unsupported protobuf wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new Error('truncated protobuf field');
  }

  sub(range) { return new Reader(this.buf, range[0], range[1]); }
}

class Writer {
  constructor() { this.parts = []; }

  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      out.push(b);
    } while (x !== 0n);
    this.parts.push(Buffer.from(out));
  }

  tag(field, wireType) { this.varint(field * 8 + wireType); }

  bytesField(field, buf) {
    this.tag(field, 2);
    this.varint(buf.length);
    this.parts.push(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
  }

  finish() { return Buffer.concat(this.parts); }
}

// ---------------------------------------------------------------- onnx.TensorProto

// onnx.TensorProto.DataType values we handle, with the ORT type name and typed array.
const DTYPES = {
  1: { ort: 'float32', Array: Float32Array },
  2: { ort: 'uint8', Array: Uint8Array },
  3: { ort: 'int8', Array: Int8Array },
  6: { ort: 'int32', Array: Int32Array },
  7: { ort: 'int64', Array: BigInt64Array },
  9: { ort: 'bool', Array: Uint8Array },
  11: { ort: 'float64', Array: Float64Array },
};
const ORT_TO_DTYPE = Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [v.ort, Number(k)]));

// Calls fn(reader) for each element of a repeated scalar field, packed or not.
function forEachRepeated(r, wireType, scalarWire, fn) {
  if (wireType === 2 && scalarWire !== 2) {
    const sub = r.sub(r.bytes());
    while (!sub.done()) fn(sub);
  } else if (wireType === scalarWire) {
    fn(r);
  } else {
    throw new Error(`unexpected wire type ${wireType} in TensorProto`);
  }
}

function parseTensor(buf) {
  const r = new Reader(buf);
  const dims = [];
  let dataType = 0;
  let name = '';
  let raw = null;
  const floats = [];
  const int32s = [];
  const int64s = [];
  const doubles = [];
  for (let t = r.tag(); t; t = r.tag()) {
    const [field, wt] = t;
    switch (field) {
      case 1: forEachRepeated(r, wt, 0, (s) => dims.push(s.varint())); break;
      case 2: dataType = r.varint(); break;
      case 4: forEachRepeated(r, wt, 5, (s) => { floats.push(s.buf.readFloatLE(s.pos)); s.pos += 4; }); break;
      case 5: forEachRepeated(r, wt, 0, (s) => int32s.push(Number(BigInt.asIntN(32, s.varintBig())))); break;
      case 7: forEachRepeated(r, wt, 0, (s) => int64s.push(s.int64())); break;
      case 8: { const [a, b] = r.bytes(); name = buf.toString('utf8', a, b); break; }
      case 9: { const [a, b] = r.bytes(); raw = buf.subarray(a, b); break; }
      case 10: forEachRepeated(r, wt, 1, (s) => { doubles.push(s.buf.readDoubleLE(s.pos)); s.pos += 8; }); break;
      case 12: throw new Error('tensors with external data are not supported');
      default: r.skip(wt);
    }
  }
  const dt = DTYPES[dataType];
  if (!dt) throw new Error(`unsupported TensorProto data_type ${dataType}`);
  const count = dims.reduce((a, b) => a * b, 1);
  let data;
  if (raw) {
    if (raw.length !== count * dt.Array.BYTES_PER_ELEMENT) {
      throw new Error(`raw_data holds ${raw.length} bytes, shape [${dims}] needs ${count * dt.Array.BYTES_PER_ELEMENT}`);
    }
    // Copy into a fresh, aligned buffer (raw_data is little-endian, as is x86/arm).
    const copy = new Uint8Array(raw.length);
    copy.set(raw);
    data = new dt.Array(copy.buffer);
  } else {
    // Typed fields: float_data for float, int64_data for int64, double_data for double,
    // int32_data for every narrower integer type and bool.
    const src = { 1: floats, 7: int64s, 11: doubles }[dataType] || int32s;
    if (src.length !== count) throw new Error(`tensor has ${src.length} values, shape [${dims}] needs ${count}`);
    data = dt.Array.from(src);
  }
  return { name, dims, type: dt.ort, data };
}

function serializeTensor(name, type, dims, data) {
  const dataType = ORT_TO_DTYPE[type];
  if (!dataType) throw new Error(`cannot write output of type ${type}`);
  const w = new Writer();
  if (dims.length) {
    const d = new Writer();
    for (const x of dims) d.varint(x);
    w.bytesField(1, d.finish());
  }
  w.tag(2, 0);
  w.varint(dataType);
  if (name) w.bytesField(8, Buffer.from(name, 'utf8'));
  // Everything as raw_data (little-endian), the compact form onnx itself writes.
  w.bytesField(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return w.finish();
}

function writeFileAtomic(file, buf) {
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------- onnx.ModelProto (inputs only)

// Returns [{name, elemType, dims}] for graph inputs that are not initializers; a dim is a
// Number (dim_value), a String (dim_param) or null (unknown).
function parseModelInputs(buf) {
  const m = new Reader(buf);
  let graph = null;
  for (let t = m.tag(); t; t = m.tag()) {
    if (t[0] === 7 && t[1] === 2) graph = m.sub(m.bytes()); // ModelProto.graph
    else m.skip(t[1]);
  }
  if (!graph) throw new Error('not an ONNX model (no graph)');
  const inputs = [];
  const initNames = new Set();
  for (let t = graph.tag(); t; t = graph.tag()) {
    const [field, wt] = t;
    if (field === 11 && wt === 2) inputs.push(parseValueInfo(graph.sub(graph.bytes())));
    else if (field === 5 && wt === 2) initNames.add(parseTensorName(graph.sub(graph.bytes())));
    else graph.skip(wt);
  }
  return inputs.filter((v) => !initNames.has(v.name));
}

function readString(r) {
  const [a, b] = r.bytes();
  return r.buf.toString('utf8', a, b);
}

function parseTensorName(r) {
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 8 && t[1] === 2) return readString(r);
    r.skip(t[1]);
  }
  return '';
}

function parseValueInfo(r) {
  const info = { name: '', elemType: 0, dims: null };
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === 2) info.name = readString(r);
    else if (t[0] === 2 && t[1] === 2) {
      const type = r.sub(r.bytes()); // TypeProto
      for (let u = type.tag(); u; u = type.tag()) {
        if (u[0] === 1 && u[1] === 2) parseTensorType(type.sub(type.bytes()), info); // tensor_type
        else type.skip(u[1]);
      }
    } else r.skip(t[1]);
  }
  return info;
}

function parseTensorType(r, info) {
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === 0) info.elemType = r.varint();
    else if (t[0] === 2 && t[1] === 2) {
      info.dims = [];
      const shape = r.sub(r.bytes()); // TensorShapeProto
      for (let u = shape.tag(); u; u = shape.tag()) {
        if (u[0] === 1 && u[1] === 2) {
          const dim = shape.sub(shape.bytes()); // Dimension
          let d = null;
          for (let v = dim.tag(); v; v = dim.tag()) {
            if (v[0] === 1 && v[1] === 0) d = dim.varint();
            else if (v[0] === 2 && v[1] === 2) d = readString(dim);
            else dim.skip(v[1]);
          }
          info.dims.push(d);
        } else shape.skip(u[1]);
      }
    } else r.skip(t[1]);
  }
}

// ---------------------------------------------------------------- command line

function parseArgs(argv, spec) {
  // spec: {flag: 'multi' | 'value' | 'flag'}; returns {positional: [...], flag: value |
  // [values] | true}
  const out = { positional: [] };
  for (const [k, kind] of Object.entries(spec)) if (kind === 'multi') out[k] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const key = a.slice(2);
      if (!(key in spec)) throw new Error(`unknown option ${a}`);
      if (spec[key] === 'flag') {
        out[key] = true;
        continue;
      }
      if (i + 1 >= argv.length) throw new Error(`option ${a} needs a value`);
      const v = argv[++i];
      if (spec[key] === 'multi') out[key].push(v);
      else out[key] = v;
    } else {
      out.positional.push(a);
    }
  }
  return out;
}

function positiveInt(v, name, dflt) {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

function sessionOptions(threads) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3, // warnings would clutter the one-line error contract
  };
}

async function cmdRun(argv) {
  const a = parseArgs(argv, { input: 'multi', output: 'multi', threads: 'value' });
  if (a.positional.length !== 1) throw new Error('usage: ort_run.js run MODEL.onnx --input IN.pb ... --output OUT.pb ...');
  const ort = loadOrt();
  const session = await ort.InferenceSession.create(a.positional[0], sessionOptions(positiveInt(a.threads, 'threads', 1)));
  if (a.input.length !== session.inputNames.length) {
    throw new Error(`model has ${session.inputNames.length} input(s) (${session.inputNames.join(', ')}), got ${a.input.length} --input`);
  }
  if (a.output.length > session.outputNames.length) {
    throw new Error(`model has ${session.outputNames.length} output(s), got ${a.output.length} --output`);
  }
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    const t = parseTensor(fs.readFileSync(a.input[i]));
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  });
  const results = await session.run(feeds);
  a.output.forEach((file, i) => {
    const name = session.outputNames[i];
    const t = results[name];
    writeFileAtomic(file, serializeTensor(name, t.type, t.dims, t.data));
  });
}

// V8's young-generation garbage collection, run before each timed run of a model whose outputs
// exceed 1 MB: every run hands back its outputs as new JavaScript buffers, and a collection of
// earlier runs' buffers landing inside a timed run adds milliseconds to such a step (resnet18's
// stem step, 3.2 MB out: median 4.4-4.9 ms without, 2.4-2.7 ms with, against 2.3 ms inside ONNX
// Runtime). Not for smaller outputs: a collection before every run doubled the time to time a
// bundle (400 models of resnet18's: 12 s -> 21 s), and a full one (about 4 ms) before each run
// of a large-output model more than doubled it too. Obtained without a command-line flag.
const minorGc = (() => {
  try {
    require('v8').setFlagsFromString('--expose-gc');
    const gc = require('vm').runInNewContext('gc');
    return () => gc({ type: 'minor' });
  } catch (e) {
    return () => {};
  }
})();

// Whether a run's outputs total more than 1 MB.
function bigOutputs(results) {
  let bytes = 0;
  for (const name of Object.keys(results)) {
    const d = results[name].data;
    if (d && d.byteLength) bytes += d.byteLength;
  }
  return bytes > (1 << 20);
}

function percentile(sorted, p) {
  // Linear interpolation between closest ranks.
  const x = (sorted.length - 1) * p;
  const lo = Math.floor(x);
  const hi = Math.ceil(x);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo);
}

// A session and a random float32 input at the model's (or --shape's) dims with batch `batch`.
async function prepareBench(ort, model, batch, threads, shape) {
  const inputs = parseModelInputs(fs.readFileSync(model));
  if (inputs.length !== 1) throw new Error(`bench needs a single-input model, ${model} has ${inputs.length}`);
  const info = inputs[0];
  if (info.elemType !== 1) throw new Error(`bench feeds float32, input '${info.name}' has ONNX type ${info.elemType}`);
  let dims;
  if (shape) {
    dims = shape.split(',').map((s) => positiveInt(s.trim(), 'shape', 0));
  } else {
    if (!info.dims || info.dims.length === 0) throw new Error(`input '${info.name}' has no shape in the model; pass --shape`);
    dims = info.dims.slice();
    const declared = dims[0];
    if (typeof declared === 'number' && declared !== batch) {
      // ORT checks fed shapes against the declared ones, so it would refuse anyway.
      throw new Error(`${model} has a static batch of ${declared}; bench --batch ${batch} needs a model exported with a dynamic batch axis`);
    }
    dims[0] = batch;
    const bad = dims.findIndex((d) => typeof d !== 'number' || d <= 0);
    if (bad >= 0) throw new Error(`input '${info.name}' dim ${bad} is symbolic (${dims[bad]}); pass --shape`);
  }
  const session = await ort.InferenceSession.create(model, sessionOptions(threads));
  const count = dims.reduce((x, y) => x * y, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = Math.random() * 2 - 1; // values do not affect timing
  return { session, feeds: { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) } };
}

// Times `runs` calls after `warmup` untimed ones; returns the times in ms.
async function timeCalls(b, warmup, runs) {
  let big = false;
  for (let i = 0; i < Math.max(warmup, 1); i++) big = bigOutputs(await b.session.run(b.feeds));
  const times = [];
  for (let i = 0; i < runs; i++) {
    if (big) minorGc();
    const t0 = process.hrtime.bigint();
    await b.session.run(b.feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.sort((x, y) => x - y);
}

const r3 = (x) => Math.round(x * 1000) / 1000;

// One model: warm-up, `runs` timed calls, summary. Several models or --rounds R > 1: every
// model is loaded, then timed in R interleaved rounds (each model in turn, `warmup` + `runs`
// calls per round), so that a drift of the machine's speed spreads over all of them alike;
// prints each model's per-round medians.
async function cmdBench(argv) {
  const a = parseArgs(argv, { batch: 'value', threads: 'value', runs: 'value', warmup: 'value', shape: 'value', rounds: 'value' });
  if (a.positional.length < 1) throw new Error('usage: ort_run.js bench MODEL.onnx [MODEL.onnx ...] [--batch B] [--threads N] [--runs R] [--warmup W] [--rounds K] [--shape D0,D1,...]');
  const batch = positiveInt(a.batch, 'batch', 1);
  const threads = positiveInt(a.threads, 'threads', 1);
  const runs = positiveInt(a.runs, 'runs', 20);
  const warmup = positiveInt(a.warmup, 'warmup', 3);
  const rounds = positiveInt(a.rounds, 'rounds', 1);
  if (batch < 1 || runs < 1 || rounds < 1) throw new Error('--batch, --runs and --rounds must be at least 1');

  const ort = loadOrt();
  if (a.positional.length === 1 && rounds === 1) {
    const b = await prepareBench(ort, a.positional[0], batch, threads, a.shape);
    const times = await timeCalls(b, warmup, runs);
    console.log(JSON.stringify({
      median_ms: r3(percentile(times, 0.5)),
      p10_ms: r3(percentile(times, 0.1)),
      p90_ms: r3(percentile(times, 0.9)),
      min_ms: r3(times[0]),
      runs,
      threads,
      batch,
    }));
    return;
  }
  const benches = [];
  for (const m of a.positional) benches.push(await prepareBench(ort, m, batch, threads, a.shape));
  const medians = benches.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < benches.length; k++) {
      medians[k].push(r3(percentile(await timeCalls(benches[k], warmup, runs), 0.5)));
    }
  }
  console.log(JSON.stringify({
    models: a.positional.map((m, k) => ({ model: m, round_median_ms: medians[k] })),
    rounds,
    runs,
    warmup,
    threads,
    batch,
  }));
}

const TYPED = {
  float32: ['float32', Float32Array],
  float64: ['float64', Float64Array],
  int64: ['int64', BigInt64Array],
  int32: ['int32', Int32Array],
  bool: ['bool', Uint8Array],
};

// Feeds for a bundle entry: random values at its inputs' shapes and types.
function bundleFeeds(ort, file, entry) {
  const feeds = {};
  for (const inp of entry.inputs) {
    const t = TYPED[inp.dtype];
    if (!t) throw new Error(`${file}: input '${inp.name}' has type ${inp.dtype}, which the runner does not feed`);
    const count = inp.shape.reduce((x, y) => x * y, 1);
    const data = new t[1](count);
    if (t[0] === 'float32' || t[0] === 'float64') for (let i = 0; i < count; i++) data[i] = Math.random() * 2 - 1;
    feeds[inp.name] = new ort.Tensor(t[0], data, inp.shape);
  }
  return feeds;
}

// With --reference, the bundle's whole max subnet is timed in a block (one warm-up, 5 runs)
// whenever a second or more has passed since the last block, and every model's times are
// divided by the median of the block that follows it: the machine's speed drifting while the
// bundle is timed cancels. The CSV then holds each model's ratio times the median of all
// blocks, in ms, and the raw median in raw_median_ms.
async function cmdBundle(argv) {
  const a = parseArgs(argv, { out: 'value', threads: 'value', 'min-ms': 'value', reference: 'flag' });
  if (a.positional.length !== 1 || !a.out) throw new Error('usage: ort_run.js bundle BUNDLE_DIR --out RESULTS.csv [--threads N] [--min-ms 25] [--reference]');
  const dir = a.positional[0];
  const threads = positiveInt(a.threads, 'threads', 1);
  const minMs = Number(a['min-ms'] === undefined ? 25 : a['min-ms']);
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    throw new Error(`${path.join(dir, 'manifest.json')}: ${e.message}`);
  }
  if (manifest.format !== 'autotailor-bundle') throw new Error(`${dir}/manifest.json is not an autotailor bundle`);
  const ort = loadOrt();
  let ref = null;
  if (a.reference) {
    const entry = manifest.models.find((e) => e.whole === 'max');
    if (!entry) throw new Error(`${dir}: --reference needs the whole max subnet (shard 0 of a bundle written with it)`);
    const file = path.join(dir, entry.file);
    ref = { session: await ort.InferenceSession.create(file, sessionOptions(threads)), feeds: bundleFeeds(ort, file, entry) };
  }
  const measured = []; // per model: id, sorted times, index of the reference block after it
  const blocks = [];
  let lastBlock = 0;
  const referenceBlock = async () => {
    const times = await timeCalls(ref, 1, 5);
    blocks.push(percentile(times, 0.5));
    lastBlock = Date.now();
  };
  let last = Date.now();
  for (let m = 0; m < manifest.models.length; m++) {
    const entry = manifest.models[m];
    const file = path.join(dir, entry.file);
    const session = await ort.InferenceSession.create(file, sessionOptions(threads));
    const feeds = bundleFeeds(ort, file, entry);
    let big = false;
    for (let i = 0; i < 3; i++) big = bigOutputs(await session.run(feeds));
    const times = [];
    let total = 0;
    while (times.length < 10 || (total < minMs && times.length < 200)) {
      if (big) minorGc();
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      times.push(ms);
      total += ms;
    }
    times.sort((x, y) => x - y);
    measured.push({ id: entry.id, times, block: blocks.length });
    if (session.release) await session.release();
    if (ref && Date.now() - lastBlock >= 1000) await referenceBlock();
    if (Date.now() - last > 10000) {
      process.stderr.write(`ort_run: ${m + 1}/${manifest.models.length} models timed\n`);
      last = Date.now();
    }
  }
  if (ref && measured.length && measured[measured.length - 1].block === blocks.length) await referenceBlock();
  const r = (x) => x.toFixed(5);
  const rows = [ref ? 'id,median_ms,p10_ms,p90_ms,runs,raw_median_ms,reference_ms' : 'id,median_ms,p10_ms,p90_ms,runs'];
  const unit = ref ? percentile(blocks.slice().sort((x, y) => x - y), 0.5) : 1;
  for (const { id, times, block } of measured) {
    const k = ref ? unit / blocks[block] : 1;
    const row = `${id},${r(k * percentile(times, 0.5))},${r(k * percentile(times, 0.1))},${r(k * percentile(times, 0.9))},${times.length}`;
    rows.push(ref ? `${row},${r(percentile(times, 0.5))},${r(blocks[block])}` : row);
  }
  writeFileAtomic(a.out, rows.join('\n') + '\n');
}

function cmdVersion() {
  let version;
  try {
    version = JSON.parse(fs.readFileSync(path.join(ORT_PATH, 'package.json'), 'utf8')).version;
  } catch (e) {
    throw new Error(`cannot read onnxruntime-node version from ${ORT_PATH}: ${e.message}`);
  }
  console.log(version);
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'run') return cmdRun(rest);
  if (cmd === 'bench') return cmdBench(rest);
  if (cmd === 'bundle') return cmdBundle(rest);
  if (cmd === 'version') return cmdVersion();
  throw new Error('usage: ort_run.js (run|bench|bundle|version) ...');
}

if (require.main === module) {
  main().catch((e) => {
    // ORT's messages span lines; fold them so the reason stays one line.
    const msg = String((e && e.message) || e).split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
    process.stderr.write(`ort_run: error: ${msg}\n`);
    process.exit(1);
  });
}

// Exposed for tests.
module.exports = { parseTensor, serializeTensor, parseModelInputs };
