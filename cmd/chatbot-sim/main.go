// Command chatbot-sim serves a faithful simulation of the ChatBot.com user segments API, for
// local demos and for users' own CI. The requests of the vendor's curl examples work against
// it with the host swapped (the examples themselves need two shell fixes: the token sits in
// single quotes, and three lack the "\" after the content-type line; docs/simulator.md shows them
// fixed):
//
//	chatbot-sim --listen 127.0.0.1:8090 --token T
//	curl -H 'authorization: Bearer T' http://127.0.0.1:8090/users/segments
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chatbot-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts      simulator.Options
		faults    simulator.Faults
		listen    = flag.String("listen", "127.0.0.1:8090", "address to serve on (port 0 picks a free port)")
		addrFile  = flag.String("address-file", "", "write the address actually listened on to this file (useful with port 0)")
		slowDelay time.Duration
		retryAft  time.Duration
	)
	// The default is read after parsing, not given to flag: flag prints defaults in its
	// usage text, which would show the token.
	flag.StringVar(&opts.Token, "token", "", "the Developer access token to accept (default $CHATBOT_SIM_TOKEN)")
	flag.DurationVar(&opts.Latency, "latency", 0, "latency added to every API call")
	flag.Float64Var(&opts.RateLimit, "rate-limit", 0, "most API calls per second before answering 429 with Retry-After (0: no limit)")
	flag.StringVar(&opts.StateFile, "state-file", "", "keep segments in this JSON file across restarts")
	flag.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of calls failing with --error-code")
	flag.IntVar(&faults.ErrorCode, "error-code", 500, "status of injected errors (5xx)")
	flag.DurationVar(&retryAft, "error-retry-after", 0, "Retry-After sent with injected errors")
	flag.Float64Var(&faults.DropRate, "drop-rate", 0, "fraction of calls whose connection is dropped")
	flag.Float64Var(&faults.LoseResponseRate, "lose-response-rate", 0, "fraction of writes made but answered 500")
	flag.Float64Var(&faults.SlowRate, "slow-rate", 0, "fraction of calls delayed by --slow-delay")
	flag.DurationVar(&slowDelay, "slow-delay", time.Second, "delay of slow calls")
	flag.Uint64Var(&faults.Seed, "seed", 0, "seed for fault draws (0: random)")
	flag.Parse()
	if opts.Token == "" {
		opts.Token = os.Getenv("CHATBOT_SIM_TOKEN")
	}

	if opts.Token == "" {
		return errors.New("--token (or $CHATBOT_SIM_TOKEN) is required")
	}
	faults.SlowDelay = simulator.Duration(slowDelay)
	faults.RetryAfter = simulator.Duration(retryAft)
	opts.Faults = faults
	sim, err := simulator.New(opts)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()

	log.Printf("chatbot-sim serving the ChatBot segments API on http://%s (control endpoint: /_sim/state)", addr)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Printf("chatbot-sim stopped")
	return nil
}
