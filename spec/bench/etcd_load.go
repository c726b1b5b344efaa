// etcd_load.go: the load generator the benchmarks use against etcd (Debian's etcd 3.4),
// so that etcd is driven the way spec/bench/load.lua drives Helios: closed loop, each
// client with one request in flight, the next sent when the answer arrives.
//
//	etcd_load -endpoints 127.0.0.1:2379 -op put -clients 64 -seconds 3
//	etcd_load -endpoints ... -op get-lin|get-ser -clients 64 -seconds 3
//	etcd_load -endpoints <the survivors> -op failover -kill-pid <the leader's pid>
//
// put: Put of a 16-byte key ("key:" and 12 digits, random in [0, -keys)) with a
// -value-bytes value. get-lin: Get of one key, linearizable (etcd's default: a ReadIndex
// round on its leader). get-ser: the same, serializable (the member's local state).
// Clients are goroutines spread over -conns gRPC connections (0: one per 16 clients, at
// least one). Only requests sent after -warmup-ms and answered before the end count;
// latency is from sending to the answer. Prints one line of key=value pairs:
//
//	etcd_load op=put clients=64 conns=4 ok=N errors=N seconds=S per_s=X p50_ms=X p99_ms=X
//
// failover: one client of the -endpoints (the members that stay up) writes once to warm
// its connection, then sends SIGKILL to -kill-pid (the leader) and puts again every
// -retry-ms, each attempt bounded by -attempt-ms, until one succeeds:
//
//	etcd_load op=failover recovered_ms=X tries=N
//
// Built offline from Debian's Go sources (golang-go, golang-etcd-server-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off go build -o X etcd_load.go
//
// Exit status 0 with the line, 1 with a reason on stderr. Every run is bounded by -max.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type options struct {
	endpoints  []string
	op         string
	clients    int
	conns      int
	valueBytes int
	keys       int
	seconds    float64
	warmup     time.Duration
	killPid    int
	retry      time.Duration
	attempt    time.Duration
	max        time.Duration
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcd_load: "+format+"\n", args...)
	os.Exit(1)
}

func connect(o *options) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: o.endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		fail("connect %s: %v", strings.Join(o.endpoints, ","), err)
	}
	return c
}

// percentile of sorted latencies, by the nearest rank (as spec/bench/load.lua).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Microseconds()) / 1000
}

func load(ctx context.Context, o *options) {
	conns := o.conns
	if conns <= 0 {
		conns = (o.clients + 15) / 16
	}
	cs := make([]*clientv3.Client, conns)
	for i := range cs {
		cs[i] = connect(o)
	}
	value := strings.Repeat("v", o.valueBytes)
	if o.op != "put" {
		if _, err := cs[0].Put(ctx, "read-key", value); err != nil {
			fail("put of the key read: %v", err)
		}
	}
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	stopAt := measureFrom.Add(time.Duration(o.seconds * float64(time.Second)))
	lat := make([][]time.Duration, o.clients)
	var errs int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < o.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := cs[w%len(cs)]
			rnd := rand.New(rand.NewSource(int64(w) + 1))
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(stopAt) {
					return
				}
				var err error
				switch o.op {
				case "put":
					key := fmt.Sprintf("key:%012d", rnd.Intn(o.keys))
					_, err = c.Put(ctx, key, value)
				case "get-lin":
					_, err = c.Get(ctx, "read-key")
				case "get-ser":
					_, err = c.Get(ctx, "read-key", clientv3.WithSerializable())
				}
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(stopAt) {
					continue
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
					firstErr.Store(err.Error())
					continue
				}
				lat[w] = append(lat[w], t1.Sub(t0))
			}
		}(w)
	}
	wg.Wait()
	for _, c := range cs {
		c.Close()
	}
	if ctx.Err() != nil {
		fail("not done within %v", o.max)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	line := fmt.Sprintf("etcd_load op=%s clients=%d conns=%d ok=%d errors=%d seconds=%.2f "+
		"per_s=%.1f p50_ms=%.3f p99_ms=%.3f", o.op, o.clients, conns, len(all), errs,
		o.seconds, float64(len(all))/o.seconds, percentile(all, 0.5), percentile(all, 0.99))
	if e, ok := firstErr.Load().(string); ok {
		line += fmt.Sprintf(" first_error=%q", e)
	}
	fmt.Println(line)
}

func failover(ctx context.Context, o *options) {
	if o.killPid <= 0 {
		fail("-op failover needs -kill-pid")
	}
	c := connect(o)
	defer c.Close()
	value := strings.Repeat("v", o.valueBytes)
	if _, err := c.Put(ctx, "failover", value); err != nil {
		fail("warm-up put: %v", err)
	}
	t0 := time.Now()
	if err := syscall.Kill(o.killPid, syscall.SIGKILL); err != nil {
		fail("kill %d: %v", o.killPid, err)
	}
	for tries := 1; ctx.Err() == nil; tries++ {
		actx, cancel := context.WithTimeout(ctx, o.attempt)
		_, err := c.Put(actx, "failover", value)
		cancel()
		if err == nil {
			fmt.Printf("etcd_load op=failover recovered_ms=%.1f tries=%d\n",
				float64(time.Since(t0).Microseconds())/1000, tries)
			return
		}
		time.Sleep(o.retry)
	}
	fail("no put succeeded within %v of the kill", o.max)
}

func main() {
	var o options
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client addresses")
	flag.StringVar(&o.op, "op", "put", "put | get-lin | get-ser | failover")
	flag.IntVar(&o.clients, "clients", 1, "concurrent clients, one request in flight each")
	flag.IntVar(&o.conns, "conns", 0, "gRPC connections the clients share (0: one per 16)")
	flag.IntVar(&o.valueBytes, "value-bytes", 100, "bytes of each value written")
	flag.IntVar(&o.keys, "keys", 1000000, "put: keys drawn from [0, keys)")
	flag.Float64Var(&o.seconds, "seconds", 3, "measured time after the warm-up")
	warmupMs := flag.Int("warmup-ms", 500, "warm-up, not measured")
	flag.IntVar(&o.killPid, "kill-pid", 0, "failover: the pid to SIGKILL (the leader)")
	retryMs := flag.Int("retry-ms", 5, "failover: pause between two attempts")
	attemptMs := flag.Int("attempt-ms", 100, "failover: the longest one attempt waits")
	flag.DurationVar(&o.max, "max", 60*time.Second, "the longest the whole run may take")
	flag.Parse()
	o.endpoints = strings.Split(*endpoints, ",")
	o.warmup = time.Duration(*warmupMs) * time.Millisecond
	o.retry = time.Duration(*retryMs) * time.Millisecond
	o.attempt = time.Duration(*attemptMs) * time.Millisecond
	if o.clients < 1 || o.seconds <= 0 || o.valueBytes < 0 || o.keys < 1 {
		fail("-clients, -seconds and -keys must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.max)
	defer cancel()
	switch o.op {
	case "put", "get-lin", "get-ser":
		load(ctx, &o)
	case "failover":
		failover(ctx, &o)
	default:
		fail("unknown -op %q (put, get-lin, get-ser, failover)", o.op)
	}
}
