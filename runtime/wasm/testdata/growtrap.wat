;; growtrap: grows its memory a page at a time until memory.grow fails, then
;; traps, as a guest that cannot live without the memory would.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
)
