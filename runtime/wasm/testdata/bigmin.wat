;; bigmin: a module whose memory starts at 64 MiB and is not exported.
(module
  (memory 1024)
  (func (export "_start"))
)
