;; nope: imports a function no runtime provides.
(module
  (import "env" "nope" (func $nope (param i32) (result i32)))
  (func (export "_start") (drop (call $nope (i32.const 1))))
)
