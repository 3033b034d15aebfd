package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
)

// kwokStages is KWOK's "fast" node stages plus the "general" pod-delete stage, so that a deleted
// or evicted pod stays Terminating until its grace period (capped by KWOK's jitter) has passed.
//
//go:embed stages.yaml
var kwokStages []byte

// controllers is the subset of kube-controller-manager that noma's behaviour depends on:
// PDB status for the Eviction API, NoExecute taints evicting pods, owner-reference and orphan
// pod cleanup (a deleted Node's pods), namespace deletion, the workloads that own drained pods,
// ServiceAccounts + root CA for the agent's projected token, aggregated RBAC roles, and
// ValidatingAdmissionPolicy type checking.
var controllers = strings.Join([]string{
	"disruption-controller",
	// Removes the not-ready taint that admission puts on every new Node once it is Ready (and
	// taints it again if KWOK stops renewing its Lease), so the scheduler places pods there.
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"garbage-collector-controller",
	"pod-garbage-collector-controller",
	"namespace-controller",
	"replicaset-controller",
	"deployment-controller",
	"daemonset-controller",
	"statefulset-controller",
	"job-controller",
	"serviceaccount-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"validatingadmissionpolicy-status-controller",
}, ",")

func componentFlags(name string, args []string) (dir string, port int, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&dir, "dir", "", "cluster state directory")
	fs.IntVar(&port, "port", 0, "kube-apiserver secure port")
	if err = fs.Parse(args); err != nil {
		return "", 0, err
	}
	if dir == "" {
		return "", 0, fmt.Errorf("--dir is required")
	}
	dir, err = filepath.Abs(dir)
	return dir, port, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(dir string) (*embed.Etcd, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "noma-testcluster"
	cfg.Dir = filepath.Join(dir, "etcd")
	// Test data is thrown away with the cluster; fsync only costs time.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = zapcore.ErrorLevel.String()
	clientURL, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(clientPort))
	peerURL, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(peerPort))
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("etcd did not become ready in 60s")
	}
	return e, clientURL.String(), nil
}

// runAPIServer runs embedded etcd and kube-apiserver in this process until a signal arrives.
func runAPIServer(args []string) error {
	dir, port, err := componentFlags("apiserver", args)
	if err != nil {
		return err
	}
	if port == 0 {
		return fmt.Errorf("--port is required")
	}
	etcd, etcdURL, err := startEtcd(dir)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	p := func(f string) string { return filepath.Join(dir, f) }
	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--token-auth-file=" + p("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		// The "kubernetes" Service cannot point at a loopback address; nothing here needs it.
		"--endpoint-reconciler-type=none",
		"--enable-admission-plugins=NodeRestriction",
		"--profiling=false",
		"--v=0",
	})
	return cmd.ExecuteContext(context.Background())
}

func runControllerManager(args []string) error {
	dir, _, err := componentFlags("controller-manager", args)
	if err != nil {
		return err
	}
	cmd := kcm.NewControllerManagerCommand()
	cmd.SetArgs([]string{
		"--kubeconfig=" + filepath.Join(dir, "controller-manager.kubeconfig"),
		"--leader-elect=false",
		"--controllers=" + controllers,
		"--root-ca-file=" + filepath.Join(dir, "ca.crt"),
		"--secure-port=0",
		"--v=0",
	})
	return cmd.ExecuteContext(context.Background())
}

func runScheduler(args []string) error {
	dir, _, err := componentFlags("scheduler", args)
	if err != nil {
		return err
	}
	cmd := scheduler.NewSchedulerCommand()
	cmd.SetArgs([]string{
		"--kubeconfig=" + filepath.Join(dir, "scheduler.kubeconfig"),
		"--leader-elect=false",
		"--secure-port=0",
		"--v=0",
	})
	return cmd.ExecuteContext(context.Background())
}

func runKwok(args []string) error {
	dir, _, err := componentFlags("kwok", args)
	if err != nil {
		return err
	}
	stages := filepath.Join(dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
		return err
	}
	// KWOK reads --config from os.Args while it builds its context, as its own main does.
	os.Args = []string{"kwok",
		"--config=" + stages,
		"--kubeconfig=" + filepath.Join(dir, "kwok.kubeconfig"),
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
		"--server-address=",
	}
	// The Kubernetes packages linked into this binary register their own --version on the
	// global flag set, which cobra would merge into KWOK's command and clash with its own.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ExitOnError)
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}
	ctx, _ := kwoklog.InitFlags(context.Background(), flagset)
	ctx, err = kwokconfig.InitFlags(ctx, flagset)
	if err != nil {
		return fmt.Errorf("kwok config: %w", err)
	}
	cmd := kwokcmd.NewCommand(ctx)
	cmd.PersistentFlags().AddFlagSet(flagset)
	cmd.SetArgs(os.Args[1:])
	return cmd.ExecuteContext(ctx)
}
