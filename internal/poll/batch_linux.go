package poll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch sends several datagrams on one connected socket with one sendmmsg.
// The datagrams lie back to back in one buffer; Send is told where each
// ends. It belongs to one goroutine and does not allocate once it has as
// many headers as the largest batch.
type Batch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

// Send sends the datagrams buf[0:ends[0]], buf[ends[0]:ends[1]], ... on the
// connected, non-blocking socket fd and returns how many were sent. A count
// short of len(ends) comes with an error: unix.EAGAIN when the socket
// buffer is full, or the error that stopped the first unsent datagram.
func (b *Batch) Send(fd int, buf []byte, ends []int) (int, error) {
	if len(ends) == 0 {
		return 0, nil
	}
	if len(b.hdrs) < len(ends) {
		b.hdrs = make([]unix.Mmsghdr, len(ends))
		b.iovs = make([]unix.Iovec, len(ends))
	}
	start := 0
	for i, end := range ends {
		b.iovs[i] = unix.Iovec{}
		if end > start {
			b.iovs[i].Base = &buf[start]
		}
		b.iovs[i].SetLen(end - start)
		b.hdrs[i] = unix.Mmsghdr{}
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.Iovlen = 1
		start = end
	}
	sent := 0
	for sent < len(ends) {
		n, err := sockCall(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&b.hdrs[sent]), uintptr(len(ends)-sent), unix.MSG_DONTWAIT)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}
