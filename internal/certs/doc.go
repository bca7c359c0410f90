// Package certs makes and loads the certificates of a cluster's mutual TLS:
// a development CA and node certificates signed by it (geocache cert), the
// PEM files a node serves and dials with, and their reload on SIGHUP or
// when the files change.
//
// One node certificate is used both to serve and to dial, so it carries
// both the serverAuth and clientAuth usages. Every key is ECDSA P-256.
package certs
