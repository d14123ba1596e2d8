package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMemListenerKeepAliveRequestsKeepTheirContext: many requests on
// reused in-memory HTTP/1.1 connections, each with a request body (the
// server aborts its background read between requests with a deadline in
// the past); no handler sees its context cancelled and every response
// arrives.
func TestMemListenerKeepAliveRequestsKeepTheirContext(t *testing.T) {
	l := newMemListener()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(100 * time.Microsecond)
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return l.DialContext(ctx) },
		MaxIdleConnsPerHost: 8,
	}}
	const workers, each = 8, 250
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				want := fmt.Sprint(w, "-", i)
				resp, err := client.Post("http://in-process/", "text/plain", strings.NewReader(want))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(got) != want {
					errs <- fmt.Errorf("request %s: status %d, body %q, err %v", want, resp.StatusCode, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMemListenerClose(t *testing.T) {
	l := newMemListener()
	l.Close()
	if _, err := l.Accept(); err != net.ErrClosed {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := l.DialContext(context.Background()); err != net.ErrClosed {
		t.Fatalf("DialContext after Close: %v, want net.ErrClosed", err)
	}
}
