// Package netsim is what the demo, the chaos harness and the tests do to
// the user-space TCP proxies (toxiproxy, as a library) that stand for the
// network between nodes on one machine.
package netsim

import (
	"context"
	"errors"
	"fmt"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
)

// cutToxic names the toxics of a cut, one per direction.
const cutToxic = "netsim-cut-"

var streams = [...]string{"upstream", "downstream"}

// Cut resets px's connections, those open and every new one at its first
// byte, nothing passing, until Uncut. The proxy keeps listening: stopped
// and started again, it would give its port up meanwhile, and any other
// socket of the machine (a client's ephemeral port) may take it, so that
// it could not listen there again. Cutting a cut proxy changes nothing.
func Cut(px *toxiproxy.Proxy) error {
	var errs []error
	for _, s := range streams {
		if px.Toxics.GetToxic(cutToxic+s) != nil {
			continue
		}
		js := fmt.Sprintf(`{"name":%q,"type":"reset_peer","stream":%q,"attributes":{"timeout":0}}`, cutToxic+s, s)
		if _, err := px.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			errs = append(errs, fmt.Errorf("cut proxy %s: %w", px.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Uncut ends Cut; a proxy not cut is left as it is.
func Uncut(px *toxiproxy.Proxy) error {
	var errs []error
	for _, s := range streams {
		if px.Toxics.GetToxic(cutToxic+s) == nil {
			continue
		}
		if err := px.Toxics.RemoveToxic(context.Background(), cutToxic+s); err != nil {
			errs = append(errs, fmt.Errorf("uncut proxy %s: %w", px.Name, err))
		}
	}
	return errors.Join(errs...)
}
