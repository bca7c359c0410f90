package resp

// pipeSize sizes a connection's read buffer to the client's pipeline. A
// read that fills the buffer at its resting size with several commands
// means the kernel may hold more of the pipeline: the buffer doubles, up
// to pipeBufMax, so that a pipeline is read, executed and answered with
// one read and one write instead of several of each. (A read that fills
// it with part of one large request does not count: that request grows
// the buffer by itself, and gives the bytes back once it is done.) After pipeShrinkAfter
// reads in a row that used less than a quarter of it, it halves again,
// down to readBufSize. The bytes beyond readBufSize come from
// MaxClientBuffer like any other, but a pipeline only grows while at least
// half of that budget is free: a request that needs the bytes is never
// refused because pipelines took them.
type pipeSize struct {
	want   int  // the read buffer's size at rest: readBufSize .. pipeBufMax
	small  int  // reads in a row that used less than a quarter of want
	filled bool // the last read filled the buffer at its resting size
}

const pipeShrinkAfter = 64

// read records a read of n bytes into the free bytes of a buffer of size
// bytes.
func (p *pipeSize) read(n, free, size int) {
	p.filled = n == free && 2*free >= p.want && size == p.want
	switch {
	case p.filled:
		p.small = 0
	case 4*n >= p.want:
		p.small = 0
	case p.want > readBufSize:
		if p.small++; p.small >= pipeShrinkAfter {
			p.want = max(p.want/2, readBufSize)
			p.small = 0
		}
	}
}

// executed records that the commands of a batch ran: if the batch's
// read filled the buffer and held more than one command, the buffer grows.
func (p *pipeSize) executed(commands int) {
	if p.filled && commands > 1 && p.want < pipeBufMax {
		p.want = min(2*p.want, pipeBufMax)
	}
	p.filled = false
}

// refused records that the budget could not give the buffer want bytes:
// the pipeline is read in parts of size bytes.
func (p *pipeSize) refused(size int) {
	p.want = max(size, readBufSize)
	p.small = 0
}
