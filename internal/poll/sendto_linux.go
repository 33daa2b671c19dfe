package poll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Addr returns the source address of datagram i of the last Recv, as the
// raw sockaddr the kernel filled in; valid until the next Recv.
func (d *Datagrams) Addr(i int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&d.addrs[i])), d.hdrs[i].Hdr.Namelen)
}

// Sendto is a batch of datagrams for an unconnected socket, each to an
// address of its own, sent with sendmmsg: one encoded message fanned out to
// many peers, or replies to several. It points into the caller's buffers
// and addresses, which must stay unchanged until the batch is Reset. It
// belongs to one goroutine and does not allocate.
type Sendto struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

// NewSendto returns an empty batch of up to slots datagrams.
func NewSendto(slots int) *Sendto {
	return &Sendto{hdrs: make([]unix.Mmsghdr, 0, slots), iovs: make([]unix.Iovec, 0, slots)}
}

// Add queues datagram b for addr, a raw sockaddr (as Addr returns), and
// reports whether the batch is now full. Adding to a full batch panics.
func (s *Sendto) Add(b, addr []byte) (full bool) {
	i := len(s.hdrs)
	s.iovs = s.iovs[:i+1]
	s.iovs[i] = unix.Iovec{}
	if len(b) > 0 {
		s.iovs[i].Base = &b[0]
	}
	s.iovs[i].SetLen(len(b))
	s.hdrs = s.hdrs[:i+1]
	s.hdrs[i] = unix.Mmsghdr{}
	h := &s.hdrs[i].Hdr
	h.Name = &addr[0]
	h.Namelen = uint32(len(addr))
	h.Iov = &s.iovs[i]
	h.Iovlen = 1
	return len(s.hdrs) == cap(s.hdrs)
}

// Len returns the number of datagrams queued.
func (s *Sendto) Len() int { return len(s.hdrs) }

// Reset empties the batch and lets go of the buffers it pointed to.
func (s *Sendto) Reset() {
	clear(s.hdrs)
	clear(s.iovs)
	s.hdrs, s.iovs = s.hdrs[:0], s.iovs[:0]
}

// SendWait sends the queued datagrams from from on, on fd, a blocking socket
// (see Block), and returns how many it sent. A count short of Len()-from
// comes with an error: unix.EAGAIN if the socket's buffer had no room within
// its send timeout, or the error that stopped the first unsent datagram.
func (s *Sendto) SendWait(fd, from int) (int, error) {
	sent := 0
	for from+sent < len(s.hdrs) {
		n, err := sockCall(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&s.hdrs[from+sent]), uintptr(len(s.hdrs)-from-sent), unix.MSG_NOSIGNAL)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}
