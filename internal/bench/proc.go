package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// memInfo is a process's memory as /proc/<pid>/status and smaps_rollup
// report it, in bytes.
type memInfo struct {
	RSS      int64 // VmRSS: what the targets are about
	HWM      int64 // VmHWM: peak RSS
	RSSAnon  int64 // RssAnon: heap, stacks
	RSSFile  int64 // RssFile: mapped files (etcd's bbolt mmap, the binary)
	RSSShmem int64 // RssShmem: shared memory (the agent's memory images)
	// PSS (Pss in smaps_rollup) counts a page mapped n times 1/n times
	// each: a page of a memory image mapped by 100 guests counts once,
	// while RSS counts it 100 times.
	PSS int64
}

// readMem reads /proc/<pid>/status and /proc/<pid>/smaps_rollup.
func readMem(pid int) (memInfo, error) {
	var m memInfo
	if err := readKB(fmt.Sprintf("/proc/%d/status", pid), map[string]*int64{
		"VmRSS:": &m.RSS, "VmHWM:": &m.HWM, "RssAnon:": &m.RSSAnon, "RssFile:": &m.RSSFile, "RssShmem:": &m.RSSShmem}); err != nil {
		return m, err
	}
	if err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), map[string]*int64{"Pss:": &m.PSS}); err != nil {
		return m, err
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return m, nil
}

// readKB sets fields from the "Key: N kB" lines of a /proc file.
func readKB(path string, fields map[string]*int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if p, ok := fields[f[0]]; ok {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				*p = kb << 10
			}
		}
	}
	return nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// readCPU returns the user+system CPU time of pid ("self" for this
// process) from /proc/<pid>/stat.
func readCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// meter samples the CPU time of the server, of this process and of the
// whole machine, and the time the hypervisor took from the machine.
type meter struct{ pid int }

type cpuSample struct{ server, bench, machine, steal time.Duration }

func (m *meter) sample() cpuSample {
	var s cpuSample
	if m == nil {
		return s
	}
	s.server, _ = readCPU(strconv.Itoa(m.pid))
	s.bench, _ = readCPU("self")
	s.machine, s.steal, _ = machineCPU()
	return s
}

// other returns the CPU time the rest of the machine used (other
// processes, kernel threads) and the time the hypervisor took (steal)
// between b and s.
func (s cpuSample) other(b cpuSample) (other, steal time.Duration) {
	return max(0, s.machine-b.machine-(s.server-b.server)-(s.bench-b.bench)), s.steal - b.steal
}

// machineCPU returns, from /proc/stat, the CPU time all CPUs spent busy
// (user, nice, system, irq, softirq) and the time the hypervisor ran
// something else on them (steal): on a shared VM the second is the
// interference no process list shows.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var ticks [8]int64
	for i, v := range f[1:9] {
		if ticks[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	// user nice system idle iowait irq softirq steal
	busyTicks := ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
	d := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return d(busyTicks), d(ticks[7]), nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPU       string
	Cores     int
	MemTotal  int64
	Kernel    string
	GoVersion string
	OS        string
	DataDirFS string
	Revision  string
}

func machineInfo(dataDir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.DataDirFS = filesystemOf(dataDir)
	return m
}

// filesystemOf returns "<type> (<device>)" of the mount holding dir, from
// /proc/mounts (longest matching mount point).
func filesystemOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	best, bestLen := "unknown", -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > bestLen {
			best, bestLen = f[2]+" ("+f[0]+")", len(mp)
		}
	}
	return best
}
