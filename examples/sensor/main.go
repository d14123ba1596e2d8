// Command sensor is an edge workload that simulates a sensor: it reads its
// configuration from a file in a mounted ConfigMap and from the environment,
// and prints one JSON reading per interval to stdout (the container log,
// where `kubectl logs` or a log shipper picks it up).
//
//	GOOS=wasip1 GOARCH=wasm go build -o sensor.wasm ./examples/sensor
//	wasmfleet module push sensor:v1 sensor.wasm
//	kubectl apply -f examples/sensor/sensor.yaml
//
// The configuration file (SENSOR_CONFIG, default /etc/sensor/sensor.json, the
// ConfigMap key sensor.json mounted at /etc/sensor) says how often to read and
// what to measure:
//
//	{"interval": "2s",
//	 "metrics": [{"name": "temperature", "unit": "celsius", "min": 18, "max": 26}]}
//
// Environment:
//
//	SENSOR_ID        the sensor's name in each reading (the pod name in sensor.yaml)
//	SENSOR_LOCATION  where it is (from the ConfigMap key location in sensor.yaml)
//	SENSOR_CONFIG    the configuration file's path
//	SENSOR_COUNT     readings to print before exiting 0 (default 0: forever)
//
// Each value is a random walk between min and max, so it needs the real
// randomness and clock that the wasm runtime gives its guests. A line looks
// like:
//
//	{"time":"2025-01-02T03:04:05.123Z","sensor":"sensor-7d9f","location":"greenhouse-2",
//	 "seq":1,"values":{"temperature":21.37},"units":{"temperature":"celsius"}}
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Getenv, os.Stdout, os.Stderr))
}

// DefaultConfigPath is where sensor.yaml mounts the ConfigMap key sensor.json.
const DefaultConfigPath = "/etc/sensor/sensor.json"

// Config is the sensor's configuration file.
type Config struct {
	Interval string   `json:"interval"`
	Metrics  []Metric `json:"metrics"`
}

// Metric is one simulated measurement.
type Metric struct {
	Name string  `json:"name"`
	Unit string  `json:"unit"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// Reading is one line of output.
type Reading struct {
	Time     time.Time          `json:"time"`
	Sensor   string             `json:"sensor"`
	Location string             `json:"location,omitempty"`
	Seq      int                `json:"seq"`
	Values   map[string]float64 `json:"values"`
	Units    map[string]string  `json:"units"`
}

// run prints readings and returns the exit code: 0, or 1 when the
// configuration is unusable.
func run(getenv func(string) string, stdout, stderr io.Writer) int {
	path := getenv("SENSOR_CONFIG")
	if path == "" {
		path = DefaultConfigPath
	}
	cfg, interval, err := loadConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "sensor: %v\n", err)
		return 1
	}
	count := 0
	if s := getenv("SENSOR_COUNT"); s != "" {
		if count, err = strconv.Atoi(s); err != nil || count < 0 {
			fmt.Fprintf(stderr, "sensor: SENSOR_COUNT=%q: want a number >= 0\n", s)
			return 1
		}
	}
	id := getenv("SENSOR_ID")
	if id == "" {
		id = "sensor"
	}

	values := make(map[string]float64, len(cfg.Metrics))
	units := make(map[string]string, len(cfg.Metrics))
	for _, m := range cfg.Metrics {
		values[m.Name] = m.Min + rand.Float64()*(m.Max-m.Min)
		units[m.Name] = m.Unit
	}
	enc := json.NewEncoder(stdout)
	for seq := 1; count == 0 || seq <= count; seq++ {
		if seq > 1 {
			time.Sleep(interval)
		}
		r := Reading{Time: time.Now().UTC(), Sensor: id, Location: getenv("SENSOR_LOCATION"), Seq: seq,
			Values: make(map[string]float64, len(values)), Units: units}
		for _, m := range cfg.Metrics {
			// A random walk: a step of about 2% of the range, kept inside it.
			v := values[m.Name] + rand.NormFloat64()*(m.Max-m.Min)*0.02
			v = math.Max(m.Min, math.Min(m.Max, v))
			values[m.Name] = v
			r.Values[m.Name] = math.Round(v*100) / 100
		}
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "sensor: write: %v\n", err)
			return 1
		}
	}
	return 0
}

// loadConfig reads and checks the configuration file.
func loadConfig(path string) (Config, time.Duration, error) {
	var cfg Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, 0, fmt.Errorf("read configuration: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, 0, fmt.Errorf("configuration %s: %w", path, err)
	}
	interval, err := time.ParseDuration(cfg.Interval)
	if err != nil || interval < 0 {
		return cfg, 0, fmt.Errorf("configuration %s: interval %q: want a duration like 2s", path, cfg.Interval)
	}
	if len(cfg.Metrics) == 0 {
		return cfg, 0, fmt.Errorf("configuration %s: no metrics", path)
	}
	seen := map[string]bool{}
	for _, m := range cfg.Metrics {
		switch {
		case m.Name == "":
			err = errors.New("a metric has no name")
		case seen[m.Name]:
			err = fmt.Errorf("metric %q appears twice", m.Name)
		case !(m.Min < m.Max):
			err = fmt.Errorf("metric %q: min %v must be below max %v", m.Name, m.Min, m.Max)
		}
		if err != nil {
			return cfg, 0, fmt.Errorf("configuration %s: %w", path, err)
		}
		seen[m.Name] = true
	}
	return cfg, interval, nil
}
