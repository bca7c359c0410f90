package main

import (
	"strings"
)

// Where a request's time goes: every perf sample of a server process is
// put in one category by its call stack.
//
// The stack is read from the leaf toward the root and the first frame that
// a rule recognises decides. So a clock read inside the store counts as a
// clock read, a malloc inside reply encoding as allocation, and the kernel
// frames of a write(2) as socket I/O whoever called it. Generic frames
// (do_syscall_64, Syscall6, memmove, map access) decide nothing: the frames
// above them do. Two rules look at the whole stack first: a sample with a
// replication frame anywhere is replication (the lead's question is what
// replication costs, syscalls and allocation included), and the garbage
// collector's background workers are GC wherever they stand.

// category is one row of the table.
type category int

const (
	catSyscall category = iota // socket read/write: syscalls and the kernel's TCP work (on loopback, delivery to the peer too)
	catSched                   // scheduler, netpoll/epoll, futex wake-ups, parked reads
	catTimer                   // deadlines and runtime timers
	catParse                   // request parsing, command lookup, argument parsing
	catStore                   // the store: lru engine, versioned store / Redis's dict and key space
	catRepl                    // replication (geocache only)
	catCopy                    // copies of values between the store and the request or reply
	catAlloc                   // allocation, freeing, garbage collection
	catReply                   // reply encoding
	catClock                   // clock reads
	catMetrics                 // metrics: counters, latency histograms, CLIENT LIST fields
	catNode                    // geocache's node and session layer (options, versioning, the write path around the store)
	catLoop                    // the rest of the request loop (connection code, command dispatch)
	catOther                   // everything else: runtime and kernel work not in a category above, interrupts
	numCategories
)

var categoryNames = [numCategories]string{
	catSyscall: "socket I/O (read/write syscalls, kernel TCP)",
	catSched:   "scheduler, netpoll/epoll, wake-ups",
	catTimer:   "deadlines and timers",
	catParse:   "parsing (requests, command lookup, options)",
	catStore:   "store (engine, key space)",
	catRepl:    "replication",
	catCopy:    "value copies",
	catAlloc:   "allocation, free, GC",
	catReply:   "reply encoding",
	catClock:   "clock reads",
	catMetrics: "metrics",
	catNode:    "node/session layer (versioning, options)",
	catLoop:    "request loop, dispatch (other server code)",
	catOther:   "other (runtime, kernel, interrupts)",
}

func (c category) String() string { return categoryNames[c] }

// rule matches a frame by prefix, exact name or substring.
type rule struct {
	cat   category
	match func(sym string) bool
}

func prefix(ps ...string) func(string) bool {
	return func(s string) bool {
		for _, p := range ps {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	}
}

func exact(names ...string) func(string) bool {
	return func(s string) bool {
		for _, n := range names {
			if s == n {
				return true
			}
		}
		return false
	}
}

func contains(subs ...string) func(string) bool {
	return func(s string) bool {
		for _, n := range subs {
			if strings.Contains(s, n) {
				return true
			}
		}
		return false
	}
}

const (
	gcPkg    = "github.com/geocache/geocache."
	respPkg  = "github.com/geocache/geocache/internal/resp."
	replPkg  = "github.com/geocache/geocache/internal/repl."
	storePkg = "github.com/geocache/geocache/internal/store."
	lruPkg   = "github.com/geocache/geocache/lru."
	latPkg   = "github.com/geocache/geocache/internal/latency."
	hlcPkg   = "github.com/geocache/geocache/internal/hlc."
	wirePkg  = "github.com/geocache/geocache/internal/wire."
)

// kernelRules classify kernel frames: the system call a sample is in.
var kernelRules = []rule{
	{catOther, prefix("asm_sysvec_", "asm_common_interrupt", "sysvec_apic_timer_interrupt")},
	{catSched, exact("schedule", "__schedule", "do_epoll_wait", "ep_poll", "__x64_sys_epoll_wait", "__x64_sys_epoll_pwait",
		"__x64_sys_epoll_ctl", "do_epoll_ctl", "__x64_sys_futex", "do_futex", "__x64_sys_nanosleep", "__x64_sys_clock_nanosleep",
		"__x64_sys_sched_yield", "do_sched_yield", "__x64_sys_tgkill", "__x64_sys_rt_sigreturn", "__x64_sys_getpid")},
	{catSyscall, exact("ksys_read", "ksys_write", "__x64_sys_read", "__x64_sys_write", "__x64_sys_writev", "do_writev",
		"__x64_sys_recvfrom", "__x64_sys_sendto", "__x64_sys_sendmsg", "__x64_sys_recvmsg", "__sys_recvfrom", "__sys_sendto",
		"vfs_read", "vfs_write", "sock_read_iter", "sock_write_iter")},
	{catClock, exact("__x64_sys_clock_gettime", "__x64_sys_gettimeofday")},
}

// goRules classify the frames of geocache (a Go program).
var goRules = []rule{
	{catClock, exact("time.now", "time.Now", "runtime.nanotime", "runtime.nanotime1", "runtime.nanotime1.abi0", "__vdso_clock_gettime",
		"runtime.walltime", "runtime.walltime1", "time.runtimeNano", "time.Since", "time.runtimeNow")},
	{catClock, contains("Clock).UnixNano", "Clock.UnixNano", "monoNow", "wallClock")},
	{catTimer, contains("SetReadDeadline", "SetWriteDeadline", "SetDeadline", "setDeadlineImpl", "pollSetDeadline",
		"runtime.modtimer", "runtime.(*timer)", "runtime.(*timers)", "runtime.deltimer", "runtime.addtimer", "runtime.resettimer",
		"runtime.checkTimers", "runtime.netpollReadDeadline", "runtime.netpolldeadlineimpl", "time.(*Timer)", "time.NewTimer", "time.AfterFunc")},
	{catAlloc, prefix("runtime.mallocgc", "runtime.gcAssist", "runtime.gcDrain", "runtime.scanobject", "runtime.greyobject",
		"runtime.markBits", "runtime.(*mcache)", "runtime.(*mcentral)", "runtime.(*mheap)", "runtime.(*mspan)", "runtime.sweepone",
		"runtime.(*sweepLocked)", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcStart", "runtime.gcMarkDone", "runtime.gcBgMarkWorker",
		"runtime.wbBufFlush", "runtime.gcWriteBarrier", "runtime.bulkBarrierPreWrite", "runtime.newobject", "runtime.makeslice",
		"runtime.growslice", "runtime.rawstring", "runtime.slicebytetostring", "runtime.concatstring", "runtime.heapSetType",
		"runtime.nextFreeFast", "runtime.memclrNoHeapPointers", "runtime.(*gcWork)", "runtime.scanblock", "runtime.scanstack",
		"runtime.markroot", "runtime.findObject", "runtime.spanOf", "runtime.(*pageAlloc)", "runtime.sysUsed", "runtime.(*scavenger")},
	{catSched, prefix("runtime.schedule", "runtime.findRunnable", "runtime.netpoll", "runtime.park_m", "runtime.gopark", "runtime.goready",
		"runtime.ready", "runtime.notewakeup", "runtime.notesleep", "runtime.futex", "runtime.mcall", "runtime.sysmon", "runtime.usleep",
		"runtime.stopm", "runtime.startm", "runtime.wakep", "runtime.runqget", "runtime.runqgrab", "runtime.runqsteal", "runtime.runqput",
		"runtime.stealWork", "runtime.execute", "runtime.goexit0", "runtime.casgstatus", "runtime.gosched", "runtime.procyield",
		"runtime.osyield", "runtime.newproc", "runtime.lock2", "runtime.unlock2", "runtime.checkdead", "runtime.resetspinning",
		"runtime.entersyscall", "runtime.exitsyscall", "runtime.reentersyscall", "runtime.handoffp", "runtime.retake", "runtime.mPark",
		"runtime.injectglist", "runtime.pidleget", "runtime.pidleput", "runtime.semrelease", "runtime.semacquire", "runtime.chansend",
		"runtime.chanrecv", "runtime.selectgo", "runtime.goschedIfBusy", "runtime.gogo", "internal/poll.(*pollDesc)",
		"internal/poll.runtime_poll", "runtime.(*waitq)", "runtime.acquirem", "runtime.releasem", "runtime.mstart", "runtime.lockWithRank",
		"runtime.nanosleep", "runtime.epollwait", "internal/runtime/syscall/linux.EpollWait", "runtime.goyield",
		"sync.(*Mutex).lockSlow", "sync.(*Mutex).unlockSlow", "internal/sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).unlockSlow",
		"sync.runtime_Semacquire", "sync.runtime_Semrelease", "runtime.traceLocker", "runtime.runtimer", "runtime.netpollgoready")},
	{catRepl, prefix(replPkg, wirePkg)},
	// bench/respmodel's two servers: gnet's event loop and its own code.
	{catSyscall, prefix("golang.org/x/sys/unix.read", "golang.org/x/sys/unix.write", "golang.org/x/sys/unix.Read",
		"golang.org/x/sys/unix.Write", "golang.org/x/sys/unix.Writev", "golang.org/x/sys/unix.writev",
		"github.com/panjf2000/gnet/v2/pkg/io.Writev")},
	{catSched, prefix("golang.org/x/sys/unix.EpollWait", "golang.org/x/sys/unix.epollWait", "github.com/panjf2000/gnet/v2/pkg/netpoll",
		"github.com/panjf2000/gnet/v2.(*eventloop)", "github.com/panjf2000/gnet/v2.(*engine)")},
	{catParse, prefix("main.(*parser)", "main.header")},
	{catLoop, prefix("main.", "github.com/panjf2000/gnet/v2")},
	{catSyscall, exact("syscall.read", "syscall.write", "syscall.Read", "syscall.Write", "internal/poll.ignoringEINTRIO",
		"internal/poll.(*FD).Read", "internal/poll.(*FD).Write", "net.(*netFD).Read", "net.(*netFD).Write", "net.(*conn).Read",
		"net.(*conn).Write", "internal/poll.(*FD).readLock", "internal/poll.(*FD).writeLock", "internal/poll.(*FD).readUnlock",
		"internal/poll.(*FD).writeUnlock", "internal/poll.(*fdMutex).rwlock", "internal/poll.(*fdMutex).rwunlock",
		"internal/poll.(*FD).RawRead", "internal/poll.(*FD).RawWrite", "net.(*rawConn).Read", "net.(*rawConn).Write",
		"internal/poll.(*FD).Writev", "net.(*conn).writeBuffers", "net.(*netFD).writeBuffers", "net.(*Buffers).WriteTo",
		"internal/poll.(*FD).eofError", "internal/poll.(*pollDesc).prepareRead", "internal/poll.(*pollDesc).prepareWrite")},
	{catMetrics, prefix(latPkg, respPkg+"(*commandLatency)", respPkg+"(*conn).noteCommand", respPkg+"(*connStats)")},
	{catParse, prefix(respPkg+"(*reader)", respPkg+"lookupCommand", respPkg+"headerLine", respPkg+"parseLength", respPkg+"equalFold",
		respPkg+"parseStrOpts", respPkg+"parseInt", respPkg+"(*command).arityOK", respPkg+"(*conn).strOptsAndExpiry")},
	{catReply, prefix(respPkg+"append", respPkg+"(*conn).reply", "strconv.AppendInt", "strconv.formatBits", "strconv.small")},
	{catStore, prefix(storePkg, lruPkg, hlcPkg)},
	{catNode, prefix(gcPkg)},
	{catLoop, prefix(respPkg)},
}

// redisRules classify the frames of redis-server (a C program; its
// exported symbols only, which is most functions: Redis links with
// -rdynamic).
var redisRules = []rule{
	{catClock, prefix("ustime", "mstime", "getMonotonicUs", "monotonicNow", "clock_gettime", "__clock_gettime", "__vdso_clock_gettime",
		"gettimeofday", "__gettimeofday", "__vdso_gettimeofday", "updateCachedTime", "getLRUClock")},
	{catMetrics, prefix("hdr_", "updateCommandLatencyHistogram", "updateStatsOnCommand")},
	{catAlloc, prefix("je_", "zmalloc", "zfree", "zcalloc", "zrealloc", "ztrymalloc", "malloc", "free", "calloc", "realloc", "cfree",
		"__libc_malloc", "__libc_free", "decrRefCount", "freeClientArgv", "freeStringObject", "sdsfree", "_int_free", "_int_malloc",
		"tcache", "extent_", "arena_", "tcache_", "sdsnewlen", "_sdsnewlen", "sdsMakeRoomFor", "sdsRemoveFreeSpace", "zmalloc_usable")},
	{catSyscall, prefix("read", "__read", "__libc_read", "write", "__write", "__libc_write", "writev", "__writev", "connSocketRead",
		"connSocketWrite", "connSocketWritev", "_writeToClient", "writeToClient", "sendReplyToClient", "readQueryFromClient",
		"recv", "send", "__libc_recv", "__libc_send")},
	{catSched, prefix("aeProcessEvents", "aeApiPoll", "epoll_wait", "epoll_ctl", "aeMain", "beforeSleep", "afterSleep", "aeCreateFileEvent",
		"aeDeleteFileEvent", "connSocketSetReadHandler", "connSocketSetWriteHandler", "handleClientsWithPendingWrites",
		"handleClientsWithPendingWritesUsingThreads", "handleClientsWithPendingReadsUsingThreads", "connSocketEventHandler",
		"callHandler", "whileBlockedCron", "serverCron", "processEventsWhileBlocked", "clientsCron")},
	{catParse, prefix("processMultibulkBuffer", "processInlineBuffer", "processInputBuffer", "lookupCommand", "createStringObject",
		"createEmbeddedStringObject", "createRawStringObject", "string2ll", "string2l", "getLongLongFromObject", "sdssplitargs",
		"parseExtendedStringArgumentsOrReply", "isContainerCommandBySds", "commandCheckArity", "commandCheckExistence",
		"strcasecmp", "__strcasecmp", "dictSdsCaseHash", "dictSdsKeyCaseCompare", "dictGenCaseHashFunction", "lookupCommandLogic",
		"lookupSubcommand", "lookupCommandBySdsLogic")},
	{catReply, prefix("addReply", "_addReply", "prepareClientToWrite", "clientHasPendingReplies", "setDeferred", "addReplyBulk",
		"_addReplyToBufferOrList", "_addReplyProtoToList", "ll2string", "sdigits10", "addReplyLongLongWithPrefix")},
	{catStore, prefix("dict", "_dict", "lookupKey", "dbAdd", "setKey", "dbSetValue", "dbOverwrite", "siphash", "setGenericCommand",
		"getGenericCommand", "getCommand", "setCommand", "performEvictions", "evict", "estimateObjectIdleTime", "tryObjectEncoding",
		"signalModifiedKey", "notifyKeyspaceEvent", "keyHashSlot", "getExpire", "expireIfNeeded", "removeExpire", "touchWatchedKey",
		"trackingInvalidateKey", "objectSetLRUOrLFU", "updateLFU", "dbGenericDelete", "lookupKeyRead", "lookupKeyWrite",
		"checkType", "incrRefCount", "setExpire", "activeExpireCycle", "databasesCron", "overMaxmemoryAfterAlloc", "getMaxmemoryState")},
	{catLoop, prefix("call", "processCommand", "commandProcessed", "resetClient", "afterCommand", "propagatePendingCommands",
		"alsoPropagate", "postExecutionUnitOperations", "blockedBeforeSleep", "handleBlockedClientsTimeout", "updateReplOffsetAndResetClient",
		"freeClientsInAsyncFreeQueue", "trimClientQueryBuffer", "clientsCronResizeQueryBuffer", "moduleFireServerEvent",
		"processPendingCommandAndInputBuffer", "execCommandPropagateMulti", "server", "main", "__libc_start")},
}

// generic frames decide nothing: the frames above them do.
var generic = map[string]bool{
	"do_syscall_64": true, "entry_SYSCALL_64": true, "entry_SYSCALL_64_after_hwframe": true, "syscall_exit_to_user_mode": true,
	"internal/runtime/syscall/linux.Syscall6": true, "syscall.Syscall": true, "syscall.Syscall6": true, "syscall.RawSyscall6": true,
	"syscall.rawSyscallNoError": true, "syscall.RawSyscall": true, "runtime/internal/syscall.Syscall6": true,
	"runtime.memmove": true, "memmove": true, "__memmove_avx_unaligned_erms": true, "__memcpy_avx_unaligned_erms": true,
	"memcpy": true, "runtime.memequal": true, "memeqbody": true, "runtime.mapaccess1_faststr": true, "runtime.mapaccess2_faststr": true,
	"runtime.aeshashbody": true, "aeshashbody": true, "runtime.strhash": true, "internal/runtime/maps.(*Map).getWithKeySmall": true,
	"internal/runtime/maps.(*Map).getWithoutKeySmallFastStr": true, "runtime.cmpbody": true, "cmpbody": true, "indexbytebody": true,
	"bytes.IndexByte": true, "internal/bytealg.IndexByte": true, "golang.org/x/sys/unix.Syscall": true,
	"golang.org/x/sys/unix.Syscall6": true, "golang.org/x/sys/unix.RawSyscall": true, "golang.org/x/sys/unix.RawSyscallNoError": true, "runtime.goexit": true, "runtime.goexit.abi0": true, "runtime.systemstack": true, "runtime.systemstack.abi0": true,
}

// copyParents are the functions whose memmove is a copy of a value on its
// way from the request to the store or from the store to the reply.
// Go's memmove keeps no frame of its own, so a stack taken through frame
// pointers skips the function that called it: a memmove that seems called
// by exec was called by a command handler (cmdGet copying the value out of
// the node), one under resp.(*conn).set by the node's copy of the value.
var copyParents = []string{gcPkg + "(*Node).Get", gcPkg + "(*Node).set", gcPkg + "(*Node).get", gcPkg + "(*Session).Set",
	respPkg + "(*conn).exec", respPkg + "(*conn).set", respPkg + "cmdGet", respPkg + "cmdSet", respPkg + "appendBulk", "main.(*handler).exec",
	respPkg + "(*conn).replyBulk", "setGenericCommand", "_addReplyToBuffer", "_addReplyProtoToList", "addReplyBulk", "addReplyProto"}

// frame is one frame of a sample's stack: its symbol and whether it is in
// the kernel.
type frame struct {
	sym    string
	kernel bool
}

// classify returns the category of a sample whose stack is frames, leaf
// first. redis chooses Redis's rules for user frames.
func classify(frames []frame, redis bool) category {
	for _, f := range frames {
		switch {
		case !redis && strings.HasPrefix(f.sym, replPkg):
			return catRepl
		case !redis && strings.HasPrefix(f.sym, "runtime.gcBgMarkWorker"):
			return catAlloc
		}
	}
	user := goRules
	if redis {
		user = redisRules
	}
	for i, f := range frames {
		if generic[f.sym] {
			if isMemmove(f.sym) && i+1 < len(frames) && isCopyParent(frames[i+1:]) {
				return catCopy
			}
			continue
		}
		rules := user
		if f.kernel {
			rules = kernelRules
		}
		for _, r := range rules {
			if r.match(f.sym) {
				return r.cat
			}
		}
	}
	return catOther
}

func isMemmove(sym string) bool {
	return strings.Contains(sym, "memmove") || strings.Contains(sym, "memcpy")
}

// isCopyParent reports whether the first frame above a memmove that is not
// another generic frame copies values.
func isCopyParent(above []frame) bool {
	for _, f := range above {
		if generic[f.sym] || f.sym == "runtime.growslice" || f.sym == "runtime.slicebytetostring" {
			continue
		}
		for _, p := range copyParents {
			if strings.HasPrefix(f.sym, p) {
				return true
			}
		}
		return false
	}
	return false
}
