module github.com/geocache/geocache

go 1.26
