;; tiny: the smallest useful wasm workload, hand-written so that a node can
;; run a thousand of it cheaply (the benchmark's "1,000 pods of a tiny
;; module"). It prints one line, then sleeps in one-hour WASI poll_oneoff
;; calls until it is stopped.
;;
;; Why it is cheap: one 64 KiB page of linear memory (the least a module that
;; talks to WASI can have: the iovec and the poll subscription live in it), no
;; tables, no globals, no heap; while it sleeps its goroutine is parked in the
;; runtime's sleep, so it takes no CPU at all (a sched_yield loop would burn a
;; core, and returning at once would make a Deployment restart it forever).
;; The runtime's sleep ends as soon as the container is stopped, and the loop's
;; back edge is where the compiled code notices and exits.
;;
;; Build (wabt, Debian package wabt): wat2wasm tiny.wat -o tiny.wasm
;; tiny.wasm is checked in next to this file; a test in runtime/wasm rebuilds
;; it and compares.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1 1)

  ;; 0..7: iovec {buf = 16, len = 24} for the greeting at 16.
  (data (i32.const 0) "\10\00\00\00\18\00\00\00")
  (data (i32.const 16) "tiny: up, sleeping now.\0a")

  ;; 64..111: one subscription (48 bytes): userdata 0, tag 0 = clock,
  ;; clock id 1 = monotonic, timeout 3600 s in ns, precision 0, flags 0 =
  ;; relative. 128..159: the event poll_oneoff writes back. 160: nevents.
  ;; 168: bytes written by fd_write.
  (data (i32.const 80) "\01\00\00\00")                 ;; clock id at 64+16
  (data (i32.const 88) "\00\a0\b8\30\46\03\00\00")     ;; 3600e9 ns at 64+24

  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 168)))
    (loop $sleep
      (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160)))
      (br $sleep)))
)
