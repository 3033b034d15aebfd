// Command testcluster runs a real Kubernetes control plane for noma's tests and sandbox:
// embedded etcd + kube-apiserver, a kube-controller-manager limited to the controllers noma
// needs, kube-scheduler, and KWOK to play the kubelet of simulated nodes.
//
// Every component runs in its own process (one binary, one sub-command each) because the
// upstream commands install process-wide signal handlers and logging that may be set once.
// `up` is the supervisor: it prepares certificates and credentials, starts the others, writes
// an admin kubeconfig and stops everything on SIGTERM/SIGINT.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	sub, args := os.Args[1], os.Args[2:]
	var err error
	switch sub {
	case "up":
		err = runSupervisor(args)
	case "apiserver":
		err = runAPIServer(args)
	case "controller-manager":
		err = runControllerManager(args)
	case "scheduler":
		err = runScheduler(args)
	case "kwok":
		err = runKwok(args)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster %s: %v\n", sub, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: testcluster up --dir DIR [--port N]
       testcluster apiserver|controller-manager|scheduler|kwok --dir DIR (started by up)`)
}
