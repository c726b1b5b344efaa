// etcd_reads.go: the etcd side of spec/bench/reads.lua. Closed-loop load of range
// requests on one key: each of --clients goroutines has its own connection (clientv3.Client)
// and one Get in flight, linearizable (etcd's default: a ReadIndex round on its leader) or
// serializable (--consistency=s: the member's local state), for --seconds after a 500 ms
// warm-up; prints "Requests/sec: N". Built by reads.lua with Debian's golang-go and
// golang-etcd-server-dev (GOPATH=/usr/share/gocode, no module download), for when etcd's own
// `benchmark` tool is not installed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	clients := flag.Int("clients", 64, "concurrent clients")
	consistency := flag.String("consistency", "l", "l: linearizable, s: serializable")
	seconds := flag.Float64("seconds", 5, "measurement time")
	flag.Parse()
	cfg := clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second}
	var opts []clientv3.OpOption
	if *consistency == "s" {
		opts = append(opts, clientv3.WithSerializable())
	}
	conns := make([]*clientv3.Client, *clients)
	for i := range conns {
		c, err := clientv3.New(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		conns[i] = c
	}
	if _, err := conns[0].Put(context.Background(), "k", "v"); err != nil {
		fmt.Fprintln(os.Stderr, "put:", err)
		os.Exit(1)
	}
	var done, errs int64
	var stop int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *clientv3.Client) {
			defer wg.Done()
			for atomic.LoadInt32(&stop) == 0 {
				if _, err := c.Get(context.Background(), "k", opts...); err != nil {
					atomic.AddInt64(&errs, 1)
				} else {
					atomic.AddInt64(&done, 1)
				}
			}
		}(c)
	}
	time.Sleep(500 * time.Millisecond)
	n0, e0 := atomic.LoadInt64(&done), atomic.LoadInt64(&errs)
	start := time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	n := atomic.LoadInt64(&done) - n0
	el := time.Since(start).Seconds()
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Printf("Requests/sec: %.1f\nErrors: %d\n", float64(n)/el, atomic.LoadInt64(&errs)-e0)
}
