;; startloop: an infinite loop in the start section, which runs while the
;; module is being instantiated, before _start.
(module
  (func $forever (loop $l (br $l)))
  (start $forever)
  (func (export "_start"))
)
