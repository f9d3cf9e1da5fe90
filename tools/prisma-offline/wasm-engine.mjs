// Loads Prisma's official WebAssembly schema engine (node_modules/prisma/build/schema_engine_bg.wasm)
// and exposes its `SchemaEngine` class.
//
// The prisma package ships that .wasm file but not the wasm-bindgen JavaScript glue that goes with
// it, so the glue is written here: createGlue() provides every function the module imports.
// wasm-bindgen names those imports (and the closure exports below) with hashes that change from one
// engine build to the next; loadSchemaEngine() refuses to start when a name is missing, so a prisma
// upgrade fails loudly (update the names from the new module's imports and exports) instead of
// misbehaving.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

/**
 * Methods of the Wasm `SchemaEngine` used by the bridge that take one input object and return a
 * Promise (the engine also has dbExecute, ensureConnectionValidity, introspectSql and version,
 * which the bridge serves otherwise).
 */
const ASYNC_METHODS = [
  'applyMigrations',
  'createMigration',
  'devDiagnostic',
  'diagnoseMigrationHistory',
  'diff',
  'evaluateDataLoss',
  'introspect',
  'markMigrationApplied',
  'markMigrationRolledBack',
  'reset',
  'schemaPush',
];

/** Exports for Rust closures called from JS: a FnMut(JsValue), its destructor, a Promise executor. */
const CALL_CLOSURE = 'wasm_bindgen_353b96ef71864b03___convert__closures_____invoke___wasm_bindgen_353b96ef71864b03___JsValue_____';
const DROP_CLOSURE =
  'wasm_bindgen_353b96ef71864b03___closure__destroy___dyn_core_9b3796e30d99ddb7___ops__function__FnMut__wasm_bindgen_353b96ef71864b03___JsValue____Output_______';
const CALL_EXECUTOR =
  'wasm_bindgen_353b96ef71864b03___convert__closures_____invoke___wasm_bindgen_353b96ef71864b03___JsValue__wasm_bindgen_353b96ef71864b03___JsValue_____';

/**
 * Compiles and instantiates the engine.
 * @returns {Promise<{ SchemaEngine: any, version: () => string, panicMessage: () => string | undefined }>}
 */
export async function loadSchemaEngine(wasmPath) {
  const module = await WebAssembly.compile(await readFile(wasmPath));
  const glue = createGlue();
  const missingImports = WebAssembly.Module.imports(module)
    .map((entry) => entry.name)
    .filter((name) => !Object.hasOwn(glue.imports, name));
  const exported = new Set(WebAssembly.Module.exports(module).map((entry) => entry.name));
  const missingExports = [CALL_CLOSURE, DROP_CLOSURE, CALL_EXECUTOR].filter((name) => !exported.has(name));
  if (missingImports.length + missingExports.length > 0) {
    throw new Error(
      `${wasmPath} does not match this bridge (was prisma upgraded?). ` +
        `Imports the bridge lacks: ${missingImports.join(', ') || 'none'}. ` +
        `Exports the bridge expects: ${missingExports.join(', ') || 'none'}.`,
    );
  }
  const instance = await WebAssembly.instantiate(module, { './schema_engine_bg.js': glue.imports });
  glue.attach(instance.exports);
  return glue.api;
}

function createGlue() {
  /** The instance's exports, set by attach(). */
  let wasm;
  /** Set by the engine's panic hook just before a Rust panic turns into a Wasm trap. */
  let panicMessage;

  // Views on the Wasm memory must be recreated whenever the memory grows (its buffer changes).
  let bytes = new Uint8Array(0);
  let dataView = new DataView(new ArrayBuffer(0));
  const memory = () => {
    if (bytes.buffer !== wasm.memory.buffer) bytes = new Uint8Array(wasm.memory.buffer);
    return bytes;
  };
  const view = () => {
    if (dataView.buffer !== wasm.memory.buffer) dataView = new DataView(wasm.memory.buffer);
    return dataView;
  };

  const decoder = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });
  const encoder = new TextEncoder();
  const readString = (ptr, len) => decoder.decode(memory().subarray(ptr >>> 0, (ptr >>> 0) + len));
  const bytesView = (ptr, len) => memory().subarray(ptr >>> 0, (ptr >>> 0) + len);

  /** Copies a JS string into Wasm memory (owned by Rust afterwards). */
  const passString = (value) => {
    const encoded = encoder.encode(value);
    const ptr = wasm.__wbindgen_malloc(encoded.length, 1) >>> 0;
    memory().set(encoded, ptr);
    return [ptr, encoded.length];
  };
  /** Writes a (ptr, len) pair to the out-parameter slot Rust passed in. */
  const writePair = (retPtr, ptr, len) => {
    view().setInt32(retPtr + 4, len, true);
    view().setInt32(retPtr, ptr, true);
  };
  const writeOptionalString = (retPtr, value) => {
    const [ptr, len] = typeof value === 'string' ? passString(value) : [0, 0];
    writePair(retPtr, ptr, len);
  };

  /** JS values that Rust holds as an index (Option<JsValue> returns, thrown errors). */
  const addToTable = (value) => {
    const index = wasm.__externref_table_alloc();
    wasm.__wbindgen_externrefs.set(index, value);
    return index;
  };
  const optionalRef = (value) => (value === undefined || value === null ? 0 : addToTable(value));

  /** Imports declared with `catch` report JS exceptions to Rust instead of unwinding through Wasm. */
  const catching =
    (fn) =>
    (...args) => {
      try {
        return fn(...args);
      } catch (error) {
        wasm.__wbindgen_exn_store(addToTable(error));
      }
    };

  // Rust closures handed to JS: reference-counted so Rust can drop them (`_wbg_cb_unref`) while a
  // call is still running; the registry frees closures that JS dropped without Rust asking.
  const closures = new FinalizationRegistry((state) => state.dtor(state.a, state.b));
  const makeClosure = (a, b, dtor, invoke) => {
    const state = { a, b, cnt: 1, dtor };
    const closure = (...args) => {
      state.cnt++;
      const ptr = state.a;
      state.a = 0; // a re-entrant call would alias Rust's `&mut` closure state
      try {
        return invoke(ptr, state.b, ...args);
      } finally {
        state.a = ptr;
        closure._wbg_cb_unref();
      }
    };
    closure._wbg_cb_unref = () => {
      if (--state.cnt === 0) {
        state.dtor(state.a, state.b);
        state.a = 0;
        closures.unregister(state);
      }
    };
    closures.register(closure, state, state);
    return closure;
  };

  // Engines live as long as the process, so they are never freed.
  class SchemaEngine {
    static wrap(ptr) {
      const engine = Object.create(SchemaEngine.prototype);
      engine.ptr = ptr >>> 0;
      return engine;
    }

    /**
     * @param {{ datamodels?: [string, string][] }} options initial schema files (path, content)
     * @param {(line: string) => void} log receives the engine's tracing output as JSON text
     * @param {object} adapterFactory an error-capturing SqlMigrationAwareDriverAdapterFactory
     * @returns {Promise<SchemaEngine>}
     */
    static new(options, log, adapterFactory) {
      return wasm.schemaengine_new(options, log, adapterFactory);
    }

    /** Panics on purpose (the CLI's FORCE_PANIC_SCHEMA_ENGINE test hook). */
    debugPanic() {
      wasm.schemaengine_debugPanic(this.ptr);
    }
  }
  for (const method of ASYNC_METHODS) {
    SchemaEngine.prototype[method] = function (input) {
      return wasm[`schemaengine_${method}`](this.ptr, input);
    };
  }

  const nodeRequire = createRequire(import.meta.url);

  const imports = {
    // Type checks and conversions used by serde-wasm-bindgen.
    __wbg___wbindgen_is_object_c818261d21f283a4: (v) => typeof v === 'object' && v !== null,
    __wbg___wbindgen_is_undefined_2d472862bd29a478: (v) => v === undefined,
    __wbg___wbindgen_is_string_fbb76cb2940daafd: (v) => typeof v === 'string',
    __wbg___wbindgen_is_bigint_cb320707dcd35f0b: (v) => typeof v === 'bigint',
    __wbg___wbindgen_is_function_ee8a6c5833c90377: (v) => typeof v === 'function',
    __wbg___wbindgen_in_bb933bd9e1b3bc0f: (key, obj) => key in obj,
    __wbg___wbindgen_jsval_eq_6b13ab83478b1c50: (a, b) => a === b,
    // biome-ignore lint/suspicious/noDoubleEquals: wasm-bindgen's glue asks for JavaScript's loose equality
    __wbg___wbindgen_jsval_loose_eq_b664b38a2f582147: (a, b) => a == b,
    // 0xFFFFFF encodes "not a boolean".
    __wbg___wbindgen_boolean_get_6d5a1ee65bab5f68: (v) => (typeof v === 'boolean' ? (v ? 1 : 0) : 0xffffff),
    __wbg___wbindgen_number_get_a20bf9b85341449d: (retPtr, v) => {
      const isNumber = typeof v === 'number';
      view().setFloat64(retPtr + 8, isNumber ? v : 0, true);
      view().setInt32(retPtr, isNumber ? 1 : 0, true);
    },
    __wbg___wbindgen_bigint_get_as_i64_f3ebc5a755000afd: (retPtr, v) => {
      const isBigInt = typeof v === 'bigint';
      view().setBigInt64(retPtr + 8, isBigInt ? v : 0n, true);
      view().setInt32(retPtr, isBigInt ? 1 : 0, true);
    },
    __wbg___wbindgen_string_get_e4f06c90489ad01b: (retPtr, v) => writeOptionalString(retPtr, v),
    __wbg___wbindgen_debug_string_df47ffb5e35e6763: (retPtr, v) => writeOptionalString(retPtr, debugString(v)),
    __wbg___wbindgen_throw_b855445ff6a94295: (ptr, len) => {
      throw new Error(readString(ptr, len));
    },
    __wbg_String_8f0eb39a4a4c2f66: (retPtr, v) => writeOptionalString(retPtr, String(v)),
    __wbg_Number_bb48ca12f395cd08: (v) => Number(v),
    __wbg_isSafeInteger_d216eda7911dde36: (v) => Number.isSafeInteger(v),
    __wbg_isArray_96e0af9891d0945d: (v) => Array.isArray(v),
    __wbg_instanceof_Map_8579b5e2ab5437c7: (v) => v instanceof Map,
    __wbg_instanceof_Promise_001fdd42afa1b7ef: (v) => v instanceof Promise,
    __wbg_instanceof_Uint8Array_20c8e73002f7af98: (v) => v instanceof Uint8Array,
    __wbg_instanceof_ArrayBuffer_70beb1189ca63b38: (v) => v instanceof ArrayBuffer,
    __wbg_valueOf_9eee4828c11458ca: (v) => v.valueOf(),

    // Objects, arrays, maps, iterators.
    __wbg_new_1acc0b6eea89d040: () => ({}),
    __wbg_new_e17d9f43105b08be: () => [],
    __wbg_new_68651c719dcda04e: () => new Map(),
    __wbg_length_cdd215e10d9dd507: (array) => array.length,
    __wbg_get_7bed016f185add81: (array, index) => array[index >>> 0],
    __wbg_set_c213c871859d6500: (array, index, value) => {
      array[index >>> 0] = value;
    },
    __wbg_push_df81a39d04db858c: (array, value) => array.push(value),
    __wbg_set_3f1d0b984ed272ed: (obj, key, value) => {
      obj[key] = value;
    },
    __wbg_get_with_ref_key_1dc361bd10053bfe: (obj, key) => obj[key],
    __wbg_get_ece95cf6585650d9: catching((obj, key) => obj[key]),
    __wbg_get_efcb449f58ec27c2: catching((obj, key) => Reflect.get(obj, key)),
    __wbg_has_787fafc980c3ccdb: catching((obj, key) => Reflect.has(obj, key)),
    __wbg_set_c2abbebe8b9ebee1: catching((obj, key, value) => Reflect.set(obj, key, value)),
    __wbg_set_907fb406c34a251d: (map, key, value) => map.set(key, value),
    __wbg_entries_e171b586f8f6bdbf: (obj) => Object.entries(obj),
    __wbg_iterator_e5822695327a3c39: () => Symbol.iterator,
    __wbg_next_2c826fe5dfec6b6a: (iterator) => iterator.next,
    __wbg_next_020810e0ae8ebcb0: catching((iterator) => iterator.next()),
    __wbg_done_2042aa2670fb1db1: (result) => result.done,
    __wbg_value_692627309814bb8c: (result) => result.value,

    // Byte arrays.
    __wbg_new_5a79be3ab53b8aa5: (source) => new Uint8Array(source),
    __wbg_new_with_length_01aa0dc35aa13543: (len) => new Uint8Array(len >>> 0),
    __wbg_new_from_slice_92f4d78ca282a2d2: (ptr, len) => new Uint8Array(bytesView(ptr, len)),
    __wbg_length_69bca3cb64fc8748: (array) => array.length,
    __wbg_subarray_480600f3d6a9f26c: (array, start, end) => array.subarray(start >>> 0, end >>> 0),
    __wbg_prototypesetcall_2a6620b6922694b2: (ptr, len, source) => {
      Uint8Array.prototype.set.call(bytesView(ptr, len), source);
    },

    // Errors, functions, regular expressions, dates and timers.
    __wbg_Error_e83987f665cf5504: (ptr, len) => new Error(readString(ptr, len)),
    __wbg_new_a7442b4b19c1a356: (ptr, len) => new Error(readString(ptr, len)),
    __wbg_set_name_d94846a29e626702: (obj, ptr, len) => {
      obj.name = readString(ptr, len);
    },
    __wbg_new_no_args_ee98eee5275000a4: (ptr, len) => new Function(readString(ptr, len)),
    __wbg_call_e762c39fa8ea36bf: catching((fn, thisArg) => fn.call(thisArg)),
    __wbg_call_525440f72fbfc0ea: catching((fn, thisArg, arg) => fn.call(thisArg, arg)),
    __wbg_new_23fa8b12a239f036: (ptr, len, flagsPtr, flagsLen) => new RegExp(readString(ptr, len), readString(flagsPtr, flagsLen)),
    __wbg_exec_fdeec61d47617356: (regexp, ptr, len) => optionalRef(regexp.exec(readString(ptr, len))),
    __wbg_new_0_f9740686d739025c: () => new Date(),
    __wbg_getTime_14776bfb48a1bff9: (date) => date.getTime(),
    __wbg_now_793306c526e2e3b6: () => Date.now(),
    __wbg_now_7fd00a794a07d388: (performance) => performance.now(),
    // Node's Timeout converts to its numeric id, which is what Rust stores.
    __wbg_setTimeout_5d6a1d4fc51ea450: (callback, ms) => setTimeout(callback, ms >>> 0),

    // Promises and the futures executor. `new Promise` runs a Rust closure as its executor, borrowed
    // for that call only.
    __wbg_new_3c3d849046688a66: (a, b) => {
      const state = { a, b };
      try {
        return new Promise((resolve, reject) => {
          const ptr = state.a;
          state.a = 0;
          try {
            return wasm[CALL_EXECUTOR](ptr, state.b, resolve, reject);
          } finally {
            state.a = ptr;
          }
        });
      } finally {
        state.a = state.b = 0;
      }
    },
    __wbg_resolve_caf97c30b83f7053: (value) => Promise.resolve(value),
    __wbg_then_4f46f6544e6b4a28: (promise, onFulfilled) => promise.then(onFulfilled),
    __wbg_then_70d05cf780a18d77: (promise, onFulfilled, onRejected) => promise.then(onFulfilled, onRejected),
    __wbg_queueMicrotask_5a8a9131f3f0b37b: (global) => global.queueMicrotask,
    __wbg_queueMicrotask_6d79674585219521: (callback) => queueMicrotask(callback),
    __wbg__wbg_cb_unref_2454a539ea5790d9: (closure) => closure._wbg_cb_unref(),

    // Globals and randomness (the `getrandom` crate looks for Node's crypto module).
    __wbg_static_accessor_GLOBAL_89e1d9ac6a1b250e: () => optionalRef(globalThis),
    __wbg_static_accessor_GLOBAL_THIS_8b530f326a9e48ac: () => optionalRef(globalThis),
    __wbg_static_accessor_SELF_6fdf4b64710cc91b: () => optionalRef(globalThis.self),
    __wbg_static_accessor_WINDOW_b45bfc5a37f6cfa2: () => optionalRef(globalThis.window),
    __wbg_crypto_805be4ce92f1e370: (global) => global.crypto,
    __wbg_msCrypto_2ac4d17c4748234a: (global) => global.msCrypto,
    __wbg_process_5cff2739921be718: (global) => global.process,
    __wbg_versions_a8e5a362e1f16442: (process) => process.versions,
    __wbg_node_ecc8306b9857f33d: (versions) => versions.node,
    __wbg_require_0c566c6f2eef6c79: catching(() => nodeRequire),
    __wbg_getRandomValues_f6a868620c8bab49: catching((crypto, array) => {
      crypto.getRandomValues(array);
    }),
    __wbg_randomFillSync_d3c85af7e31cf1f8: catching((crypto, array) => {
      crypto.randomFillSync(array);
    }),

    // The engine's panic hook reports the panic message here before trapping.
    __wbg_set_message_f18c00fbf3b3e80e: (ptr, len) => {
      panicMessage = readString(ptr, len);
    },
    __wbg_schemaengine_new: (ptr) => SchemaEngine.wrap(ptr),

    // Rust -> JS value conversions.
    __wbindgen_cast_2241b6af4c4b2941: (ptr, len) => readString(ptr, len),
    __wbindgen_cast_cb9088102bce6b30: (ptr, len) => bytesView(ptr, len),
    __wbindgen_cast_4625c577ab2ec9ee: (value) => BigInt.asUintN(64, value),
    __wbindgen_cast_9ae0607507abb057: (value) => value,
    __wbindgen_cast_d6cd19b81560fd6e: (value) => value,
    __wbindgen_cast_a9993887db3ced61: (a, b) => makeClosure(a, b, wasm[DROP_CLOSURE], wasm[CALL_CLOSURE]),
    __wbindgen_init_externref_table: () => {
      const table = wasm.__wbindgen_externrefs;
      const offset = table.grow(4);
      table.set(0, undefined);
      table.set(offset + 0, undefined);
      table.set(offset + 1, null);
      table.set(offset + 2, true);
      table.set(offset + 3, false);
    },
  };

  /** Engine version: the prisma-engines commit hash the Wasm module was built from. */
  const version = () => {
    const [ptr, len] = wasm.version();
    try {
      return readString(ptr, len);
    } finally {
      wasm.__wbindgen_free(ptr, len, 1);
    }
  };

  return {
    imports,
    attach(exports) {
      wasm = exports;
      wasm.__wbindgen_start();
    },
    api: { SchemaEngine, version, panicMessage: () => panicMessage },
  };
}

/** Human-readable rendering of any JS value, used by Rust's `Debug` formatting of JsValue. */
function debugString(value) {
  const type = typeof value;
  if (type === 'number' || type === 'boolean' || value === null || value === undefined) return `${value}`;
  if (type === 'string') return JSON.stringify(value);
  if (type === 'symbol') return value.description === undefined ? 'Symbol' : `Symbol(${value.description})`;
  if (type === 'function') return value.name ? `Function(${value.name})` : 'Function';
  if (Array.isArray(value)) return `[${value.map(debugString).join(', ')}]`;
  if (value instanceof Error) return `${value.name}: ${value.message}\n${value.stack}`;
  const className = Object.prototype.toString.call(value).slice(8, -1);
  if (className !== 'Object') return className;
  try {
    return `Object(${JSON.stringify(value)})`;
  } catch {
    return 'Object';
  }
}
