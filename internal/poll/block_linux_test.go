package poll

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockingUDP returns a blocking UDP socket on loopback (see Block) and its
// address.
func blockingUDP(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	fd, err := Detach(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(fd) })
	if err := Block(fd, timeout); err != nil {
		t.Fatal(err)
	}
	return fd, addr
}

func TestRecvWaitEchoWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sent int // datagrams sent before RecvWait
	}{
		{name: "one (sendto)", sent: 1},
		{name: "three (sendmmsg)", sent: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fd, addr := blockingUDP(t, 0)
			cl, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for i := range tt.sent {
				if _, err := fmt.Fprintf(cl, "datagram %d", i); err != nil {
					t.Fatal(err)
				}
			}
			d := NewDatagrams(16, 2048)
			got := 0
			for got < tt.sent {
				n, err := d.RecvWait(fd)
				if err != nil {
					t.Fatal(err)
				}
				if m, err := d.EchoWait(fd, 0, n); m != n || err != nil {
					t.Fatalf("EchoWait = %d, %v; want %d, nil", m, err, n)
				}
				got += n
			}
			_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2048)
			for i := range tt.sent {
				n, err := cl.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("datagram %d", i); !bytes.Equal(buf[:n], []byte(want)) {
					t.Errorf("echo %d = %q, want %q", i, buf[:n], want)
				}
			}
		})
	}
}

func TestRecvWaitTimeout(t *testing.T) {
	t.Parallel()
	fd, _ := blockingUDP(t, 20*time.Millisecond)
	d := NewDatagrams(4, 2048)
	start := time.Now()
	if n, err := d.RecvWait(fd); !Again(err) {
		t.Fatalf("RecvWait = %d, %v; want EAGAIN", n, err)
	}
	if el := time.Since(start); el < 15*time.Millisecond || el > 5*time.Second {
		t.Errorf("RecvWait returned after %v, want about 20ms", el)
	}
}

// waitBlockedIn waits until a thread of this process is blocked in system
// call nr on fd, as /proc/self/task/*/syscall shows it.
func waitBlockedIn(t *testing.T, nr uintptr, fd int) {
	t.Helper()
	want := fmt.Sprintf("%d 0x%x ", nr, fd)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall"); err == nil && strings.HasPrefix(string(b), want) {
				return
			}
		}
	}
	t.Fatalf("no thread blocked in system call %d on fd %d after 5s", nr, fd)
}

func TestUnblockWakesRecvWait(t *testing.T) {
	t.Parallel()
	fd, _ := blockingUDP(t, 0) // no timeout: only Unblock can wake it
	done := make(chan error, 1)
	go func() {
		_, err := NewDatagrams(4, 2048).RecvWait(fd)
		done <- err
	}()
	waitBlockedIn(t, unix.SYS_RECVMMSG, fd)
	if err := Unblock(fd); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RecvWait after Unblock: %v, want a return without error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Unblock did not wake RecvWait")
	}
	// Later receives do not block either.
	if _, err := NewDatagrams(4, 2048).RecvWait(fd); err != nil {
		t.Errorf("RecvWait after Unblock: %v", err)
	}
	var b [1]byte
	if err := unix.Sendto(fd, b[:], unix.MSG_NOSIGNAL, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}); err != unix.EPIPE {
		t.Errorf("send after Unblock: %v, want EPIPE", err)
	}
}
