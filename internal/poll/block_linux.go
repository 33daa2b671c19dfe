package poll

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Block makes fd blocking, for a thread of its own to serve without epoll,
// with receive and send timeouts of timeout (zero: none): a call blocked for
// that long returns unix.EAGAIN, so that the thread gets to look around.
func Block(fd int, timeout time.Duration) error {
	if err := unix.SetNonblock(fd, false); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(int64(timeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

// Unblock wakes the threads blocked receiving from or sending on socket fd
// (a receive returns as if an empty datagram had come, a send fails), and
// makes later calls return at once. On an unconnected datagram socket
// shutdown reports ENOTCONN but takes effect all the same, so that error is
// not one.
func Unblock(fd int) error {
	if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && err != unix.ENOTCONN {
		return err
	}
	return nil
}

// RecvWait is Recv for a blocking socket (see Block): it waits for a first
// datagram, then takes those queued behind it without waiting. It returns
// unix.EAGAIN if none came within the socket's receive timeout.
func (d *Datagrams) RecvWait(fd int) (int, error) { return d.recv(fd, unix.MSG_WAITFORONE) }

// EchoWait is Echo for a blocking socket: it waits for room in the socket's
// send buffer, and returns unix.EAGAIN with a short count if there was none
// within the socket's send timeout. A lone datagram goes with sendto, which
// costs the kernel less than sendmmsg.
func (d *Datagrams) EchoWait(fd int, from, to int) (int, error) {
	if to-from != 1 {
		return d.echo(fd, from, to, unix.MSG_NOSIGNAL)
	}
	h := &d.hdrs[from].Hdr
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(d.iovs[from].Base)), uintptr(d.iovs[from].Len),
		unix.MSG_NOSIGNAL, uintptr(unsafe.Pointer(h.Name)), uintptr(h.Namelen))
	switch e {
	case 0:
		return 1, nil
	case unix.EINTR:
		return d.EchoWait(fd, from, to)
	}
	return 0, e
}
