;; spin: an infinite loop with no calls at all.
(module
  (func (export "_start") (loop $forever (br $forever)))
)
