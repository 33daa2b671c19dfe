package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/targets"
)

const serveUsage = `
Usage: sockbench serve [--ws ADDR] [--tcp ADDR] [--udp ADDR] [flags]

Runs sockbench's reference server alone until interrupted: WebSocket echo
(any path), TCP byte echo (works with len32, line and raw framing) and UDP
datagram echo. With no address flag it serves WebSocket on 127.0.0.1:8080.
It binds to loopback unless told otherwise. On exit it prints its counters.
On Linux it serves every connection from --loops epoll event loops (one
thread each); a peer that does not read its echoes is held to 4 MiB of
queued replies, and the server stops reading from it until it catches up.

Examples:
  sockbench serve --ws 127.0.0.1:8080 --tcp 127.0.0.1:9000 --udp 127.0.0.1:9001
  sockbench serve --ws 127.0.0.1:0   # an ephemeral port, printed at start
  sockbench serve --ws 127.0.0.1:8080 --loops 4`

func serveCmd() command {
	return command{
		summary: "run the reference server (WebSocket, TCP and UDP echo)",
		usage:   serveUsage,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			wsAddr := fs.String("ws", "", "WebSocket listen address (default 127.0.0.1:8080 when no address is given)")
			tcpAddr := fs.String("tcp", "", "TCP listen address")
			udpAddr := fs.String("udp", "", "UDP listen address")
			maxFrame := fs.Int("max-frame", targets.DefaultMaxFrame, "largest WebSocket frame payload accepted, bytes")
			idle := fs.Duration("idle-timeout", 0, "close connections idle this long (0: never)")
			loops := fs.Int("loops", runtime.GOMAXPROCS(0), "event loops serving the connections, one OS thread each (Linux)")
			udpTTL := fs.Duration("udp-member-ttl", targets.DefaultUDPMemberTTL, "a UDP room member that sends nothing this long leaves its rooms (Linux)")
			maxPending := fs.Int("max-pending", targets.DefaultMaxPending, "bytes queued for one connection that is not reading: echo stops reading from it, room deliveries beyond it are dropped and counted (Linux; at least 65536)")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 0 {
					return &usageError{fmt.Sprintf("serve takes no arguments (got %q)", args)}
				}
				if *loops < 1 {
					return &usageError{fmt.Sprintf("--loops %d: want at least 1", *loops)}
				}
				if *maxPending < targets.MinMaxPending {
					return &usageError{fmt.Sprintf("--max-pending %d: want at least %d bytes", *maxPending, targets.MinMaxPending)}
				}
				if *udpTTL <= 0 {
					return &usageError{fmt.Sprintf("--udp-member-ttl %v: want a positive duration", *udpTTL)}
				}
				cfg := targets.Config{WS: *wsAddr, TCP: *tcpAddr, UDP: *udpAddr, MaxFrame: *maxFrame, IdleTimeout: *idle, Loops: *loops, UDPMemberTTL: *udpTTL, MaxPending: *maxPending,
					Logf: func(format string, a ...any) { fmt.Fprintf(stderr, "sockbench serve: "+format+"\n", a...) }}
				if cfg.WS == "" && cfg.TCP == "" && cfg.UDP == "" {
					cfg.WS = "127.0.0.1:8080"
				}
				raiseOpenFiles()
				srv, err := targets.Serve(cfg)
				if err != nil {
					return &cannotError{fmt.Errorf("serve: %w", err)}
				}
				for _, t := range []string{"ws", "tcp", "udp"} {
					if u := srv.URL(t); u != "" {
						fmt.Fprintf(stdout, "listening %s\n", u)
					}
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				<-ctx.Done()
				closed := make(chan error, 1)
				go func() { closed <- srv.Close() }()
				select {
				case <-closed:
				case <-time.After(5 * time.Second):
					fmt.Fprintln(stderr, "sockbench serve: connections did not close within 5s")
				}
				st := srv.Stats()
				fmt.Fprintf(stdout, "accepted %d, ws handshake failures %d, messages echoed %d, datagrams echoed %d, bytes in %d out %d, protocol errors %d, io errors %d, rooms %d, members %d, deliveries %d, drops %d\n",
					st.ConnsAccepted, st.WSHandshakeFailures, st.MessagesEchoed, st.DatagramsEchoed, st.BytesIn, st.BytesOut, st.ProtocolErrors, st.IOErrors,
					st.Rooms, st.Members, st.Deliveries, st.Drops)
				return nil
			}
		},
	}
}

// cannotError is an operation that could not be carried out: exit 3.
type cannotError struct{ err error }

func (e *cannotError) Error() string { return e.err.Error() }
func (e *cannotError) Unwrap() error { return e.err }
