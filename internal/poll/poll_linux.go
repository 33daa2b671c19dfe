// Package poll is the epoll event loop plumbing that sockbench's client
// engine and reference server share: an epoll instance with a wake-up
// eventfd, waits with nanosecond timeouts, and the few socket calls the loops
// need. It holds no connection state; the loops that own the fds do.
package poll

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event bits, as epoll reports them.
const (
	In    = unix.EPOLLIN
	Out   = unix.EPOLLOUT
	Err   = unix.EPOLLERR
	Hup   = unix.EPOLLHUP
	RdHup = unix.EPOLLRDHUP
)

// Event is one ready fd.
type Event = unix.EpollEvent

// FD returns the fd an event is for.
func FD(ev *Event) int { return int(ev.Fd) }

// Poller is one epoll instance. Add, Mod, Del and Wake may be called from any
// goroutine; Wait only from the loop that owns the poller.
type Poller struct {
	epfd   int
	wakefd int
	woken  atomic.Bool // a wake-up is pending: later Wakes need no write
	events []Event
	pwait2 bool // epoll_pwait2 works: waits are not rounded up to milliseconds
}

// New returns a poller that reports up to batch events per Wait.
func New(batch int) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	p := &Poller{epfd: epfd, wakefd: wakefd, events: make([]Event, max(batch, 16)), pwait2: true}
	if err := p.Add(wakefd, In); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Add registers fd for the events in ev (level-triggered).
func (p *Poller) Add(fd int, ev uint32) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &Event{Events: ev, Fd: int32(fd)})
}

// Mod changes the events fd is registered for.
func (p *Poller) Mod(fd int, ev uint32) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &Event{Events: ev, Fd: int32(fd)})
}

// Del removes fd from the poller. Closing fd does the same.
func (p *Poller) Del(fd int) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Wake makes the current or next Wait return. It costs one write the first
// time after a Wait, and nothing for further calls until the next Wait.
func (p *Poller) Wake() {
	if p.woken.Swap(true) {
		return
	}
	var one = [8]byte{1}
	_, _ = unix.Write(p.wakefd, one[:])
}

// Wait waits up to timeout for events (negative: no limit; zero: do not
// block) and returns the ready ones, not counting wake-ups: the slice is
// reused by the next call. A wake-up makes it return early, possibly with no
// events.
func (p *Poller) Wait(timeout time.Duration) ([]Event, error) {
	var n int
	var err error
	for {
		n, err = p.wait(timeout)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	evs := p.events[:n]
	for i := 0; i < len(evs); i++ {
		if int(evs[i].Fd) == p.wakefd {
			var b [8]byte
			_, _ = unix.Read(p.wakefd, b[:])
			p.woken.Store(false)
			evs[i] = evs[len(evs)-1]
			evs = evs[:len(evs)-1]
			i--
		}
	}
	return evs, nil
}

func (p *Poller) wait(timeout time.Duration) (int, error) {
	evp := unsafe.Pointer(&p.events[0])
	if timeout > 0 && p.pwait2 {
		ts := unix.NsecToTimespec(int64(timeout))
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(p.epfd), uintptr(evp), uintptr(len(p.events)),
			uintptr(unsafe.Pointer(&ts)), 0, 0)
		if e == unix.ENOSYS {
			p.pwait2 = false // kernels before 5.11: whole milliseconds
			return p.wait(timeout)
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
	msec := -1
	if timeout >= 0 {
		msec = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	if msec == 0 {
		// Not blocking: no need to give the P away.
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(evp), uintptr(len(p.events)), 0, 0, 0)
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
	r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(evp), uintptr(len(p.events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Close releases the poller; fds still registered are not closed.
func (p *Poller) Close() error {
	return errors.Join(unix.Close(p.wakefd), unix.Close(p.epfd))
}

// LockThread wires the calling goroutine to its OS thread and sets that
// thread's timer slack to 1 ns, so that timed waits wake when asked rather
// than up to the default 50 us later. Call it at the top of a loop goroutine.
func LockThread() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// Read reads from fd without blocking the thread for long: the fd is
// non-blocking. It returns unix.EAGAIN when nothing is ready.
func Read(fd int, b []byte) (int, error) {
	n, err := unix.Read(fd, b)
	if err == unix.EINTR {
		return Read(fd, b)
	}
	return n, err
}

// Write writes to a non-blocking fd; a short count or unix.EAGAIN means the
// socket buffer is full.
func Write(fd int, b []byte) (int, error) {
	n, err := unix.Write(fd, b)
	if err == unix.EINTR {
		return Write(fd, b)
	}
	return n, err
}

// Again reports whether err means "try again when the fd is ready".
func Again(err error) bool { return err == unix.EAGAIN }

// Close closes fd.
func Close(fd int) error { return unix.Close(fd) }

// Detach takes the socket out of a net.Conn (or net.Listener, or anything
// with SyscallConn) for an event loop to own: it returns a non-blocking
// duplicate of the fd and closes the original, which Go's own poller held.
// The socket stays open through the duplicate.
func Detach(c interface {
	SyscallConn() (syscall.RawConn, error)
	Close() error
}) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		derr = err
	}
	c.Close()
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// procs tracks the Ps reserved for event loops; GOMAXPROCS is process-wide,
// so this is too.
var procs struct {
	sync.Mutex
	base     int // GOMAXPROCS before any reservation
	reserved int
}

// Reserve adds n to GOMAXPROCS for as long as n event loops run, and
// returns the function that gives them back. A loop spends its idle time
// blocked in epoll_wait, and a goroutine blocked in a system call keeps its
// P until the runtime's monitor takes it back, which can take up to 10 ms;
// with one P per loop added, the rest of the program (the dialers, the
// collector, an embedded server) always has GOMAXPROCS of its own.
func Reserve(n int) (release func()) {
	procs.Lock()
	defer procs.Unlock()
	if procs.reserved == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.reserved += n
	runtime.GOMAXPROCS(procs.base + procs.reserved)
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.Lock()
			defer procs.Unlock()
			procs.reserved -= n
			runtime.GOMAXPROCS(procs.base + procs.reserved)
		})
	}
}

// CPUs is GOMAXPROCS not counting Ps reserved for loops: the default number
// of loops.
func CPUs() int {
	procs.Lock()
	defer procs.Unlock()
	if procs.reserved == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return procs.base
}
