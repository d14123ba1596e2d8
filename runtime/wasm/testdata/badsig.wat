;; badsig: imports a WASI function with the wrong type.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i64)))
  (func (export "_start") (call $exit (i64.const 0)))
)
