;; badstart: _start takes a parameter, so it is no WASI command.
(module
  (func (export "_start") (param i32))
)
