// Command memhog holds N MiB of random data in memory and prints a checksum
// of it every second, so a checkpoint benchmark (and a restore) can show
// that memory came back intact.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	mib := 64
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil || n < 0 {
			fmt.Fprintln(os.Stderr, "usage: memhog MiB")
			os.Exit(2)
		}
		mib = n
	}
	buf := make([]byte, mib<<20)
	if _, err := rand.Read(buf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sum := sha256.Sum256(buf)
	for i := 0; ; i++ {
		fmt.Printf("tick %d holding %d MiB sha256 %x\n", i, mib, sum[:8])
		time.Sleep(time.Second)
	}
}
