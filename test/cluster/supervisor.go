package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// kubeconfig is written by hand: the format is small and stable, and client-go's writer
// would add a dependency on the whole clientcmd tree to this file for nothing.
func kubeconfig(server string, caPEM []byte, user, token string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: noma-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: noma-test
  context:
    cluster: noma-test
    user: %s
current-context: noma-test
`, server, base64.StdEncoding.EncodeToString(caPEM), user, token, user))
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func runSupervisor(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", ".cluster", "cluster state directory")
	port := fs.Int("port", 0, "kube-apiserver secure port (0: a free one)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the control plane")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	// A cluster is disposable: start from an empty etcd every time.
	for _, f := range []string{"etcd", "kubeconfig"} {
		if err := os.RemoveAll(filepath.Join(abs, f)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(abs, "supervisor.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if *port == 0 {
		if *port, err = freePort(); err != nil {
			return err
		}
	}
	if err := writePKI(abs); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(abs, "ca.crt"))
	if err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(*port)

	// Static tokens for the admin and the control-plane components. Other identities
	// (ServiceAccounts) get real tokens from the TokenRequest API.
	users := []struct{ file, name, groups string }{
		{"admin.kubeconfig", "noma-admin", "system:masters"},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", "system:masters"},
		{"scheduler.kubeconfig", "system:kube-scheduler", "system:masters"},
		{"kwok.kubeconfig", "kwok-controller", "system:masters"},
	}
	csv := ""
	tokens := map[string]string{}
	for i, u := range users {
		tok, err := randomToken()
		if err != nil {
			return err
		}
		tokens[u.file] = tok
		csv += fmt.Sprintf("%s,%s,uid-%d,\"%s\"\n", tok, u.name, i, u.groups)
		if err := writeAtomic(filepath.Join(abs, u.file), kubeconfig(server, caPEM, u.name, tok), 0o600); err != nil {
			return err
		}
	}
	if err := writeAtomic(filepath.Join(abs, "tokens.csv"), []byte(csv), 0o600); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var children []*child
	defer func() { stopChildren(children) }()
	start := func(name string) (*child, error) {
		c, err := startChild(abs, name, *port)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
		return c, nil
	}

	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(caPEM)
	httpc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}},
	}
	adminToken := tokens["admin.kubeconfig"]
	deadline := time.Now().Add(*timeout)

	api, err := start("apiserver")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, httpc, server+"/readyz", adminToken, deadline, api); err != nil {
		return fmt.Errorf("kube-apiserver: %w (see %s)", err, filepath.Join(abs, "apiserver.log"))
	}
	for _, name := range []string{"controller-manager", "scheduler", "kwok"} {
		if _, err := start(name); err != nil {
			return err
		}
	}
	// The serviceaccount controller creating "default" proves the controller-manager works;
	// tests that create pods right after need it too.
	if err := waitFor(ctx, httpc, server+"/api/v1/namespaces/default/serviceaccounts/default", adminToken, deadline, children...); err != nil {
		return fmt.Errorf("controller-manager: %w (see %s)", err, filepath.Join(abs, "controller-manager.log"))
	}
	if err := writeAtomic(filepath.Join(abs, "kubeconfig"), kubeconfig(server, caPEM, "noma-admin", adminToken), 0o600); err != nil {
		return err
	}
	fmt.Printf("control plane ready at %s; kubeconfig %s\n", server, filepath.Join(abs, "kubeconfig"))

	exited := make(chan *child, len(children))
	for _, c := range children {
		go func(c *child) { err := <-c.done; c.done <- err; exited <- c }(c)
	}
	select {
	case <-ctx.Done():
		fmt.Println("stopping control plane")
		return nil
	case c := <-exited:
		err := <-c.done
		return fmt.Errorf("%s exited (%v); stopping the control plane, see %s", c.name, err,
			filepath.Join(abs, c.name+".log"))
	}
}

func startChild(dir, name string, port int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, name, "--dir", dir, "--port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the supervisor dies without cleaning up (SIGKILL), the kernel kills the children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); logf.Close() }()
	return c, nil
}

func stopChildren(children []*child) {
	// Reverse order: the API server goes last so the others can shut down cleanly.
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.done:
			c.done <- err
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	}
}

func waitFor(ctx context.Context, httpc *http.Client, url, token string, deadline time.Time, watch ...*child) error {
	var last error = errors.New("not tried")
	for time.Now().Before(deadline) {
		for _, c := range watch {
			select {
			case err := <-c.done:
				c.done <- err
				return fmt.Errorf("%s exited: %v", c.name, err)
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out: %w", last)
}
