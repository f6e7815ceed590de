package local

// The backend and the sandbox's init talk over a SOCK_SEQPACKET socket pair.
// The backend sends one message: the JSON initConfig, with the layers as
// detached mounts attached (SCM_RIGHTS, in initFDs order). The init answers
// only when it fails, with the error's text; otherwise its end closes when
// it executes the agent (the socket is close-on-exec).

// File descriptors of the init process.
const (
	initSockFD = 3 // the socket to the backend
	initExeFD  = 4 // the binary the init was executed from
)

// agentComm is the process name of the agent, and so of a sandbox's init
// once it has executed the agent.
const agentComm = "cubicle"

// agentPath is where the cubicle binary appears inside every sandbox.
const agentPath = "/usr/local/bin/cubicle"

// maxConfig bounds the config message; the environment and the agent's
// arguments make up most of it.
const maxConfig = 128 << 10

// initConfig tells the init how to build the sandbox.
type initConfig struct {
	// Staging is the host path of an empty directory the init mounts a
	// tmpfs on (in its own mount namespace) to assemble the root.
	Staging   string   `json:"staging"`
	Hostname  string   `json:"hostname"`
	Env       []string `json:"env"`
	AgentArgs []string `json:"agent_args"`
	// TmpMB and ShmMB cap /tmp and /dev/shm, which are charged to the
	// sandbox's memory.
	TmpMB       int  `json:"tmp_mb"`
	ShmMB       int  `json:"shm_mb"`
	AllowPtrace bool `json:"allow_ptrace"`
	// Files are written into the new root before the agent starts, by
	// path relative to the root: /etc/resolv.conf and /etc/hosts, which a
	// template leaves for each sandbox to fill in.
	Files map[string]string `json:"files,omitempty"`
}

// The detached mounts sent with the config, in this order.
const (
	fdLower = iota // the template's root, idmapped into the sandbox's range, read-only
	fdUpper        // the ext4 of the writable layer, with upper/ and work/
	fdAgent        // the cubicle binary, read-only
	numInitFDs
)
