package simulator

import (
	"encoding/json"
	"net/http"
)

// State is the simulator's full state as GET /_sim/state reports it.
type State struct {
	Segments []Segment `json:"segments"`
	Counts   Counts    `json:"counts"`
	Faults   Faults    `json:"faults"`
	Settings Settings  `json:"settings"`
}

// Settings are the simulator's run-time knobs, changed with PUT /_sim/settings.
type Settings struct {
	// Latency is added to every vendor call.
	Latency Duration `json:"latency"`
	// RateLimit is the most vendor calls per second; 0 means none.
	RateLimit float64 `json:"rateLimit"`
}

// controlRoutes registers the control endpoint. It is not part of the vendor API, needs no
// token and should only be reachable by the tests or the person running the simulator:
//
//	GET    /_sim/state     segments with their members, counters, faults, settings
//	GET    /_sim/counts    the counters
//	PUT    /_sim/faults    replace the injected faults (a Faults JSON object)
//	DELETE /_sim/faults    remove every injected fault
//	PUT    /_sim/settings  change latency and rate limit (a Settings JSON object)
//	POST   /_sim/reset     delete every segment and zero the counters
func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET /_sim/counts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Counts())
	})
	mux.HandleFunc("PUT /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&f); err != nil {
			writeError(w, s.now(), http.StatusBadRequest, "faults: "+err.Error())
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeError(w, s.now(), http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		_ = s.SetFaults(Faults{})
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT /_sim/settings", func(w http.ResponseWriter, r *http.Request) {
		var set Settings
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&set); err != nil || set.Latency < 0 || set.RateLimit < 0 {
			writeError(w, s.now(), http.StatusBadRequest, "settings: want {\"latency\": \"50ms\", \"rateLimit\": 20} with no negative value")
			return
		}
		s.SetLatency(set.Latency.Duration())
		s.SetRateLimit(set.RateLimit)
		writeJSON(w, http.StatusOK, s.State().Settings)
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
}

// State returns the simulator's full state.
func (s *Server) State() State {
	st := State{Segments: s.Segments(), Counts: s.Counts(), Faults: s.Faults()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Settings.Latency = Duration(s.latency)
	if s.limiter != nil {
		st.Settings.RateLimit = float64(s.limiter.bucket.Limit())
	}
	return st
}
