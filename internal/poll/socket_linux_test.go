package poll

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAccept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pending int // connections dialled before Accept
	}{
		{
			name:    "none pending",
			pending: 0,
		},
		{
			name:    "one pending",
			pending: 1,
		},
		{
			name:    "three pending",
			pending: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			lfd, err := Detach(ln.(*net.TCPListener))
			if err != nil {
				t.Fatal(err)
			}
			defer Close(lfd)
			for range tt.pending {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			for i := range tt.pending {
				fd, err := acceptWithin(lfd, 5*time.Second)
				if err != nil {
					t.Fatalf(
						"accept %d of %d: %v",
						i+1, tt.pending, err)
				}
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
				if err != nil || flags&unix.O_NONBLOCK == 0 {
					t.Errorf(
						"accepted fd flags %#x (%v), want O_NONBLOCK",
						flags, err)
				}
				Close(fd)
			}
			if fd, err := Accept(lfd); !Again(err) {
				t.Fatalf(
					"Accept with nothing pending = %d, %v; want EAGAIN",
					fd, err)
			}
		})
	}
}

// acceptWithin waits up to d for lfd to be readable, then accepts.
func acceptWithin(lfd int, d time.Duration) (int, error) {
	if err := waitReadable(lfd, d); err != nil {
		return -1, err
	}
	return Accept(lfd)
}

// waitReadable waits up to d for fd to be readable.
func waitReadable(fd int, d time.Duration) error {
	p, err := New(1)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Add(fd, In); err != nil {
		return err
	}
	evs, err := p.Wait(d)
	if err == nil && len(evs) == 0 {
		err = unix.ETIMEDOUT
	}
	return err
}

func TestDatagramsEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sizes []int // one datagram per size, from alternating sources
		slots int
	}{
		{
			name:  "empty datagram",
			sizes: []int{0},
			slots: 4,
		},
		{
			name:  "fewer than slots",
			sizes: []int{1, 100, 1400},
			slots: 4,
		},
		{
			name:  "more than slots",
			sizes: []int{10, 20, 30, 40, 50, 60, 70},
			slots: 3,
		},
		{
			name:  "largest IPv4 payload",
			sizes: []int{65507, 5},
			slots: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			addr := srv.LocalAddr().String()
			_ = srv.SetReadBuffer(1 << 20)
			fd, err := Detach(srv)
			if err != nil {
				t.Fatal(err)
			}
			defer Close(fd)
			var clients [2]net.Conn
			for i := range clients {
				if clients[i], err = net.Dial("udp", addr); err != nil {
					t.Fatal(err)
				}
				defer clients[i].Close()
				_ = clients[i].SetDeadline(time.Now().Add(5 * time.Second))
			}
			d := NewDatagrams(tt.slots, 65535)
			if n, err := d.Recv(fd); !Again(err) {
				t.Fatalf(
					"Recv with nothing queued = %d, %v; want EAGAIN",
					n, err)
			}
			for i, size := range tt.sizes {
				if _, err := clients[i%2].Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
					t.Fatal(err)
				}
			}
			for got := 0; got < len(tt.sizes); {
				if err := waitReadable(fd, 5*time.Second); err != nil {
					t.Fatalf(
						"waiting for datagram %d: %v",
						got, err)
				}
				n, err := d.Recv(fd)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if p, want := d.Payload(i), tt.sizes[got+i]; len(p) != want {
						t.Fatalf(
							"datagram %d: %d bytes, want %d",
							got+i, len(p), want)
					}
				}
				if m, err := d.Echo(fd, 0, n); m != n || err != nil {
					t.Fatalf(
						"Echo = %d, %v; want %d, nil",
						m, err, n)
				}
				got += n
			}
			buf := make([]byte, 70000)
			for i, size := range tt.sizes {
				n, err := clients[i%2].Read(buf)
				if err != nil {
					t.Fatalf(
						"echo of datagram %d: %v",
						i, err)
				}
				if !bytes.Equal(buf[:n], bytes.Repeat([]byte{byte(i)}, size)) {
					t.Fatalf(
						"echo of datagram %d: %d bytes, want %d bytes of %d",
						i, n, size, i)
				}
			}
		})
	}
}
