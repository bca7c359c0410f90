package main

import (
	"strings"
	"testing"
)

// stack builds a stack, leaf first, from "k:" (kernel) or plain symbols.
func stack(syms ...string) []frame {
	out := make([]frame, len(syms))
	for i, s := range syms {
		if k, ok := strings.CutPrefix(s, "k:"); ok {
			out[i] = frame{sym: k, kernel: true}
		} else {
			out[i] = frame{sym: s}
		}
	}
	return out
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		redis bool
		stack []frame
		want  category
	}{
		{"write syscall from the connection", false, stack("k:tcp_sendmsg_locked", "k:sock_write_iter", "k:vfs_write", "k:ksys_write",
			"k:do_syscall_64", "internal/runtime/syscall/linux.Syscall6", "syscall.write", "internal/poll.(*FD).Write",
			respPkg+"(*conn).write", respPkg+"(*conn).flush"), catSyscall},
		{"netpoll in the scheduler", false, stack("k:ep_poll", "k:do_epoll_wait", "k:__x64_sys_epoll_pwait", "k:do_syscall_64",
			"internal/runtime/syscall/linux.Syscall6", "internal/runtime/syscall/linux.EpollWait", "runtime.netpoll", "runtime.findRunnable"), catSched},
		{"parked read", false, stack("runtime.gopark", "runtime.netpollblock", "internal/poll.runtime_pollWait", "internal/poll.(*FD).Read",
			respPkg+"(*conn).fill"), catSched},
		{"clock read in the store", false, stack("__vdso_clock_gettime", "runtime.nanotime1.abi0", "time.Since", storePkg+"(*monoClock).UnixNano",
			lruPkg+"(*Cache[…]).Compute", storePkg+"(*Store).Apply"), catClock},
		{"deadline", false, stack("runtime.(*timer).modify", "internal/poll.runtime_pollSetDeadline", "internal/poll.setDeadlineImpl",
			"net.(*conn).SetReadDeadline", respPkg+"(*conn).fill"), catTimer},
		{"GET's copy: memmove seen under exec (its caller has no frame)", false, stack("runtime.memmove", respPkg+"(*conn).exec",
			respPkg+"(*conn).process"), catCopy},
		{"compaction of the read buffer is not a value copy", false, stack("runtime.memmove", respPkg+"(*conn).fill"), catLoop},
		{"allocation in the node", false, stack("runtime.mallocgcSmallNoscan", "runtime.mallocgc", "runtime.growslice", gcPkg+"(*Node).set"), catAlloc},
		{"replication wins wherever it is", false, stack("k:tcp_sendmsg_locked", "k:ksys_write", "syscall.write", "internal/poll.(*FD).Write",
			replPkg+"(*frameConn).write", replPkg+"(*sender).run"), catRepl},
		{"store", false, stack("memeqbody", lruPkg+"(*Cache[…]).get", storePkg+"(*Store).Get"), catStore},
		{"reader", false, stack(respPkg+"parseLength", respPkg+"(*reader).next", respPkg+"(*conn).process"), catParse},
		{"metrics", false, stack(latPkg+"(*Histogram).Observe", respPkg+"(*commandLatency).observe", respPkg+"(*conn).exec"), catMetrics},
		{"timer interrupt", false, stack("k:handle_softirqs", "k:irq_exit_rcu", "k:sysvec_apic_timer_interrupt", "k:asm_sysvec_apic_timer_interrupt",
			lruPkg+"(*Cache[…]).get"), catOther},
		{"redis: dictFind", true, stack("dictFind", "lookupKey", "getCommand", "call", "processCommand"), catStore},
		{"redis: read(2)", true, stack("k:tcp_recvmsg", "k:sock_read_iter", "k:vfs_read", "k:ksys_read", "k:do_syscall_64", "read",
			"connSocketRead", "readQueryFromClient"), catSyscall},
		{"redis: epoll_wait", true, stack("k:ep_poll", "k:do_epoll_wait", "k:__x64_sys_epoll_wait", "epoll_wait", "aeApiPoll", "aeProcessEvents"), catSched},
		{"redis: reply", true, stack("_addReplyToBufferOrList", "addReplyBulk", "getGenericCommand"), catReply},
		{"redis: parse", true, stack("processMultibulkBuffer", "processInputBuffer", "readQueryFromClient"), catParse},
		{"redis: malloc under parsing", true, stack("je_malloc", "zmalloc", "createStringObject", "processMultibulkBuffer"), catAlloc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.stack, tt.redis); got != tt.want {
				t.Errorf("classify = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestParseScript(t *testing.T) {
	const out = `geocache  6891     500000 
	          26aa01 github.com/geocache/geocache/lru.(*Cache[go.shape.string,go.shape.struct { a []uint8 }]).Compute (/tmp/geocache)
	ffffffff8205b59b __ip_queue_xmit+0x1b ([kernel.kallsyms])

redis-server 17 250000
	7f00 dictFind (/usr/bin/redis-check-rdb)
`
	var got []string
	var periods []float64
	err := parseScript(strings.NewReader(out), func(period float64, frames []frame) {
		periods = append(periods, period)
		var s []string
		for _, f := range frames {
			k := ""
			if f.kernel {
				k = "k:"
			}
			s = append(s, k+f.sym)
		}
		got = append(got, strings.Join(s, " | "))
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"github.com/geocache/geocache/lru.(*Cache[go.shape.string,go.shape.struct { a []uint8 }]).Compute | k:__ip_queue_xmit",
		"dictFind",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(periods) != 2 || periods[0] != 500000 || periods[1] != 250000 {
		t.Errorf("parsed %q with periods %v; want %q with 500000, 250000", got, periods, want)
	}
}
