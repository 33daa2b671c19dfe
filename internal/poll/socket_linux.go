package poll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Accept accepts one pending connection on the non-blocking listening socket
// lfd and returns it non-blocking and close-on-exec. The peer's address is not
// asked for (decoding it would allocate). It returns unix.EAGAIN when no
// connection is pending.
func Accept(lfd int) (int, error) {
	return sockCall(unix.SYS_ACCEPT4, lfd, nil, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
}

// Datagrams is a batch of datagram slots for one UDP socket: Recv fills them
// with recvmmsg, Echo sends them back to where they came from with sendmmsg.
// Each slot keeps its source address in raw form, so a batch costs two system
// calls and no allocation however many datagrams it holds. It belongs to one
// goroutine.
type Datagrams struct {
	size  int // bytes per slot
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrAny
	bufs  [][]byte
}

// NewDatagrams returns slots datagram slots of size bytes each. A datagram
// longer than size is truncated to it; 65,535 bytes hold any UDP payload.
func NewDatagrams(slots, size int) *Datagrams {
	d := &Datagrams{
		size:  size,
		hdrs:  make([]unix.Mmsghdr, slots),
		iovs:  make([]unix.Iovec, slots),
		addrs: make([]unix.RawSockaddrAny, slots),
		bufs:  make([][]byte, slots),
	}
	mem := make([]byte, slots*size)
	for i := range slots {
		d.bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		d.iovs[i].Base = &d.bufs[i][0]
		d.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&d.addrs[i]))
		d.hdrs[i].Hdr.Iov = &d.iovs[i]
		d.hdrs[i].Hdr.Iovlen = 1
	}
	return d
}

// Recv reads as many datagrams as are queued on the non-blocking socket fd,
// up to the number of slots, and returns how many it read. It returns
// unix.EAGAIN when none is queued. The previous batch is forgotten.
func (d *Datagrams) Recv(fd int) (int, error) { return d.recv(fd, unix.MSG_DONTWAIT) }

// recv is Recv with recvmmsg flags flags.
func (d *Datagrams) recv(fd int, flags uintptr) (int, error) {
	for i := range d.hdrs {
		d.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
		d.hdrs[i].Hdr.Flags = 0
		d.iovs[i].SetLen(d.size)
	}
	n, err := sockCall(unix.SYS_RECVMMSG, fd, unsafe.Pointer(&d.hdrs[0]), uintptr(len(d.hdrs)), flags)
	if err != nil {
		return 0, err
	}
	for i := range n {
		// Send the datagram back as long as it came.
		d.iovs[i].SetLen(int(d.hdrs[i].Len))
	}
	return n, nil
}

// Payload returns datagram i of the last Recv; valid until the next Recv.
func (d *Datagrams) Payload(i int) []byte { return d.bufs[i][:d.iovs[i].Len] }

// Echo sends datagrams from up to (not including) to of the last Recv, each
// to the address it came from, and returns how many were sent. A count short
// of to-from comes with an error: unix.EAGAIN when the socket buffer is full
// (send the rest when fd is writable), or the error that stopped the first
// unsent datagram.
func (d *Datagrams) Echo(fd int, from, to int) (int, error) {
	return d.echo(fd, from, to, unix.MSG_DONTWAIT)
}

// echo is Echo with sendmmsg flags flags.
func (d *Datagrams) echo(fd int, from, to int, flags uintptr) (int, error) {
	if from >= to {
		return 0, nil
	}
	n, err := sockCall(unix.SYS_SENDMMSG, fd, unsafe.Pointer(&d.hdrs[from]), uintptr(to-from), flags)
	if err != nil {
		return 0, err
	}
	if n < to-from {
		// sendmmsg stops short without saying why; asked again, it either
		// sends more or fails on the first one with its error.
		m, err := d.echo(fd, from+n, to, flags)
		return n + m, err
	}
	return n, nil
}

// sockCall runs socket system call trap with arguments fd, p, a2 and a3,
// again when interrupted.
func sockCall(trap uintptr, fd int, p unsafe.Pointer, a2, a3 uintptr) (int, error) {
	for {
		r, _, e := unix.Syscall6(trap, uintptr(fd), uintptr(p), a2, a3, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return -1, unix.EAGAIN
		}
		return -1, e
	}
}
