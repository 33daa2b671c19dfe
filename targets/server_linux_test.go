//go:build linux && !targets_goroutine

package targets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// waitFor polls cond every millisecond until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(
				"timed out waiting for %s",
				what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlowConsumerBounded: a peer that sends without reading fills its
// queue up to MaxPending and no further; the loop stops reading from it, goes
// on serving the other connections, and once the peer reads, every byte comes
// back in order.
func TestSlowConsumerBounded(t *testing.T) {
	t.Parallel()
	const (
		maxPending = 256 << 10
		chunks     = 512 // of 64 KiB: 32 MiB, far more than socket buffers hold
		chunkSize  = 64 << 10
		frameSize  = 1 << 10 // WebSocket payload per frame
	)
	// chunk returns what the client sends as chunk i and what must come back.
	type codec func(i int) (send, echo []byte)
	tcpChunk := func(i int) ([]byte, []byte) {
		b := make([]byte, chunkSize)
		for j := range b {
			b[j] = byte((i + j) % 251)
		}
		binary.BigEndian.PutUint64(b, uint64(i))
		return b, b
	}
	wsChunk := func(i int) ([]byte, []byte) {
		var send, echo []byte
		for f := range chunkSize / frameSize {
			p := make([]byte, frameSize)
			for j := range p {
				p[j] = byte(i + f + j)
			}
			binary.BigEndian.PutUint64(p, uint64(i))
			echo = append(echo, 0x82, 126, frameSize>>8, frameSize&0xff)
			echo = append(echo, p...)
			send = append(send, clientFrame(t, masked(true, ws.OpBinary), p)...)
		}
		return send, echo
	}
	// Text frames are gathered whole before their echo, so their bytes
	// count against the bound while they arrive; frames larger than
	// outSlack would take the queue over MaxPending otherwise.
	const textFrameSize = 16 << 10
	wsTextChunk := func(i int) ([]byte, []byte) {
		const frameSize = textFrameSize
		var send, echo []byte
		for f := range chunkSize / frameSize {
			p := []byte(fmt.Sprintf("%016x", i))
			for j := len(p); j < frameSize; j++ {
				p = append(p, byte('a'+(i+f+j)%26))
			}
			echo = append(echo, 0x81, 126, frameSize>>8, frameSize&0xff)
			echo = append(echo, p...)
			send = append(send, clientFrame(t, masked(true, ws.OpText), p)...)
		}
		return send, echo
	}
	tests := []struct {
		name  string
		dial  func(t *testing.T, s *Server) (net.Conn, io.Reader)
		chunk codec
		held  int // the most bytes gathered, not yet queued, when the queue is full
	}{
		{
			name: "tcp",
			dial: func(t *testing.T, s *Server) (net.Conn, io.Reader) {
				c := dial(t, "tcp", s.TCPAddr())
				return c, c
			},
			chunk: tcpChunk,
		},
		{
			name: "websocket",
			dial: func(t *testing.T, s *Server) (net.Conn, io.Reader) {
				c := dialWS(t, s)
				return c.Conn, c
			},
			chunk: wsChunk,
		},
		{
			name: "websocket text",
			dial: func(t *testing.T, s *Server) (net.Conn, io.Reader) {
				c := dialWS(t, s)
				return c.Conn, c
			},
			chunk: wsTextChunk,
			held:  textFrameSize,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One loop: the slow peer and the others share it.
			s := serve(t, Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", Loops: 1, MaxPending: maxPending})
			slow, slowR := tt.dial(t, s)
			_ = slow.SetDeadline(time.Now().Add(4 * testTimeout))
			_ = slow.(*net.TCPConn).SetReadBuffer(64 << 10)
			wrote := make(chan error, 1)
			go func() {
				for i := range chunks {
					b, _ := tt.chunk(i)
					if _, err := slow.Write(b); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- nil
			}()

			l := s.loops[0]
			full := int64(maxPending - outSlack - minReadRoom - tt.held)
			waitFor(t, "the slow peer's queue to fill", func() bool { return l.pub.peakQueued.Load() >= full })
			select {
			case err := <-wrote:
				t.Fatalf(
					"the slow peer wrote all %d bytes (%v): the server did not hold it back",
					chunks*chunkSize, err)
			default:
			}
			// The loop still serves everyone else.
			echoWS(t, dialWS(t, s), []byte("still served"))
			echoTCP(t, dial(t, "tcp", s.TCPAddr()), []byte("still served"))
			if peak := l.pub.peakQueued.Load(); peak > maxPending {
				t.Fatalf(
					"a queue reached %d bytes, over MaxPending %d",
					peak, maxPending)
			}

			br := bufio.NewReaderSize(slowR, 256<<10)
			for i := range chunks {
				_, want := tt.chunk(i)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil {
					t.Fatalf(
						"reading echo of chunk %d: %v",
						i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf(
						"echo of chunk %d differs from what was sent",
						i)
				}
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if peak := l.pub.peakQueued.Load(); peak > maxPending {
				t.Fatalf(
					"a queue reached %d bytes, over MaxPending %d",
					peak, maxPending)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().IOErrors; got != 0 {
				t.Fatalf(
					"IOErrors = %d, want 0",
					got)
			}
		})
	}
}

// TestManyConnsAcrossLoops deals connections to every loop in turn and
// serves them all at once.
func TestManyConnsAcrossLoops(t *testing.T) {
	t.Parallel()
	const (
		loops = 4
		each  = 100 // connections per transport
	)
	s := serve(t, Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", Loops: loops})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var closers []io.Closer
	errs := make(chan error, 2*each)
	for i := range 2 * each {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("conn %d", i))
			var c net.Conn
			var r io.Reader
			if i%2 == 0 {
				wc, br, _, err := ws.Dial(t.Context(), s.URL("ws"))
				if err != nil {
					errs <- err
					return
				}
				c, r = wc, wc
				if br != nil {
					r = io.MultiReader(br, wc)
				}
				msg = clientFrame(t, masked(true, ws.OpBinary), msg)
			} else {
				tc, err := net.Dial("tcp", s.TCPAddr())
				if err != nil {
					errs <- err
					return
				}
				c, r = tc, tc
			}
			mu.Lock()
			closers = append(closers, c)
			mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			for range 3 {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				n := len(msg)
				if i%2 == 0 {
					n -= 4 // the server's frames carry no mask
				}
				if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every echo was written after its loop published its connection count.
	for i, l := range s.loops {
		if got, want := l.pub.conns.Load(), int64(2*each/loops); got != want {
			t.Errorf(
				"loop %d owns %d connections, want %d",
				i, got, want)
		}
	}
	if got, want := s.Stats().MessagesEchoed, int64(3*each); got != want {
		t.Errorf(
			"MessagesEchoed = %d, want %d",
			got, want)
	}
	for _, c := range closers {
		_ = c.Close()
	}
	waitFor(t, "every connection to close", func() bool { return s.Stats().ConnsOpen == 0 })
}

// idleClientEnv tells the test binary to act as the client of TestIdleWSMemory.
const idleClientEnv = "TARGETS_IDLE_WS_CLIENT"

// TestIdleWSMemory holds 19,000 idle WebSocket connections and checks the
// server's resident memory grows by less than 2 KiB for each. The clients run
// in a child process: each process may have only 20,000 files open.
func TestIdleWSMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 19,000 connections")
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory swamps the figure")
	}
	const (
		conns   = 19000
		perConn = 2 << 10
	)
	s := serve(t, Config{WS: "127.0.0.1:0"})
	before := rss(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleWSClient$", "-test.v")
	cmd.Env = append(os.Environ(), idleClientEnv+"="+s.URL("ws")+" "+strconv.Itoa(conns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready") || strings.HasPrefix(line, "client:") {
				ready <- line
			}
		}
		close(ready)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf(
				"client: %q",
				line)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("client not ready after 2 minutes")
	}
	waitFor(t, "the server to hold every connection", func() bool { return s.Stats().ConnsOpen == conns })
	after := rss(t)
	per := (after - before) / conns
	t.Logf("RSS %d KiB idle, %d KiB with %d connections: %d bytes each", before>>10, after>>10, conns, per)
	if per >= perConn {
		t.Errorf(
			"%d bytes of RSS per idle connection, want under %d",
			per, perConn)
	}
}

// TestIdleWSClient is the client side of TestIdleWSMemory, run in a child
// process: it opens the connections, says "ready" and holds them until its
// standard input closes.
func TestIdleWSClient(t *testing.T) {
	env := os.Getenv(idleClientEnv)
	if env == "" {
		t.Skip("the client half of TestIdleWSMemory")
	}
	url, n, _ := strings.Cut(env, " ")
	conns, _ := strconv.Atoi(n)
	held := make([]net.Conn, conns)
	var wg sync.WaitGroup
	var failed sync.Once
	const dialers = 16
	for d := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := d; i < conns; i += dialers {
				c, _, _, err := ws.Dial(t.Context(), url)
				if err != nil {
					failed.Do(func() { fmt.Printf("client: dial %d: %v\n", i, err) })
					return
				}
				held[i] = c
			}
		}()
	}
	wg.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range held {
		if c != nil {
			_ = c.Close()
		}
	}
}

// rss returns the process's resident memory after a collection that returns
// free memory to the system, in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
