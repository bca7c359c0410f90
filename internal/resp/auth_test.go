package resp

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestAuth(t *testing.T) {
	_, addr := startServer(t, Config{RequirePass: "s3cret"})
	r := dialRaw(t, addr)
	for _, st := range []step{
		// Redis's order: unknown command and arity come before NOAUTH.
		both("-ERR unknown command 'foo', with args beginning with: ", "foo"),
		both(arity("get"), "GET"),
		both("-NOAUTH Authentication required.", "GET", "k"),
		both("-NOAUTH Authentication required.", "PING"),
		both("-NOAUTH Authentication required.", "CLIENT", "SETINFO", "lib-name", "x"),
		both("-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time", "HELLO", "3"),
		both("-WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "wrong"),
		both("-WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "admin", "s3cret"),
		both("-WRONGPASS invalid username-password pair or user is disabled.", "HELLO", "3", "AUTH", "default", "nope"),
		both("-NOAUTH Authentication required.", "GET", "k"),
		both("+OK", "AUTH", "s3cret"),
		both("nil", "GET", "k"),
		both("+OK", "AUTH", "default", "s3cret"),
		both(`["requirepass" "(hidden)"]`, "CONFIG", "GET", "requirepass"),
	} {
		if got := r.do(st.args...); got != st.want {
			t.Errorf("%q: got %s\n\twant %s", st.args, got, st.want)
		}
	}

	// HELLO with AUTH authenticates and switches protocol in one step.
	r = dialRaw(t, addr)
	if got := r.do("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "svc"); !strings.HasPrefix(got, `{"server": "redis", "version": "7.2.0", "proto": :3, "id": :`) {
		t.Fatalf("HELLO 3 AUTH: %s", got)
	}
	if got := r.do("CLIENT", "GETNAME"); got != `"svc"` {
		t.Errorf("name set by HELLO: %s", got)
	}
	if got := r.do("QUIT"); got != "+OK" {
		t.Errorf("QUIT: %s", got)
	}
	r = dialRaw(t, addr)
	if got := r.do("QUIT"); got != "+OK" {
		t.Errorf("QUIT before AUTH: %s", got)
	}
	r.expectClosed("")

	// go-redis authenticates with HELLO in both protocols.
	for _, proto := range []int{2, 3} {
		c := newClient(t, addr, func(o *redis.Options) { o.Password, o.Protocol = "s3cret", proto })
		if err := c.Set(bg, "k", "v", 0).Err(); err != nil {
			t.Fatalf("go-redis RESP%d with the password: %v", proto, err)
		}
		bad := newClient(t, addr, func(o *redis.Options) { o.Password, o.Protocol = "wrong", proto })
		if err := bad.Ping(bg).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("go-redis RESP%d with a wrong password: %v", proto, err)
		}
	}
}
