package poll

import (
	"bytes"
	"net"
	"testing"
	"time"
)

func TestBatchSend(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := Detach(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	var b Batch
	for _, tc := range []struct {
		name  string
		grams []string
	}{
		{"none", nil},
		{"one", []string{"a"}},
		{"three", []string{"first", "", "third one"}},
		{"twenty", []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19"}},
	} {
		var buf []byte
		var ends []int
		for _, g := range tc.grams {
			buf = append(buf, g...)
			ends = append(ends, len(buf))
		}
		n, err := b.Send(fd, buf, ends)
		if err != nil || n != len(tc.grams) {
			t.Fatalf("%s: sent %d, %v; want %d, nil", tc.name, n, err, len(tc.grams))
		}
		rb := make([]byte, 100)
		for i, want := range tc.grams {
			_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, err := srv.Read(rb)
			if err != nil || !bytes.Equal(rb[:m], []byte(want)) {
				t.Fatalf("%s: datagram %d: %q, %v; want %q", tc.name, i, rb[:m], err, want)
			}
		}
	}
	buf := bytes.Repeat([]byte("x"), 64*16)
	ends := make([]int, 16)
	for i := range ends {
		ends[i] = 64 * (i + 1)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = b.Send(fd, buf, ends) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
}
