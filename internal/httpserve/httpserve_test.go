package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	go func() { done <- Serve(ctx, "test server", "127.0.0.1:0", h, func(a net.Addr) { addrs <- a }) }()
	addr := <-addrs
	resp, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestServeBadAddress(t *testing.T) {
	err := Serve(context.Background(), "test server", "not-an-address", http.NotFoundHandler(), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "test server: ") {
		t.Fatalf("err = %v, want one naming the server", err)
	}
}
