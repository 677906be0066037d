// Command kube-controller-manager is the upstream kube-controller-manager
// (k8s.io/kubernetes/cmd/kube-controller-manager) with one change for tests:
// the Job controller's pod-failure backoff is shortened. Upstream it starts at
// 10s and doubles up to 10m, which makes any test of Job retries slow. It is
// read from the environment:
//
//	TP_JOB_POD_FAILURE_BACKOFF      default backoff (Go duration, default 1s)
//	TP_JOB_POD_FAILURE_BACKOFF_MAX  maximum backoff (Go duration, default 2s)
//
// Everything else (flags, controllers, behaviour) is the upstream command.
package main

import (
	"fmt"
	"os"
	"time"
	_ "time/tzdata" // for CronJob Time Zone support

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugin
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/pkg/controller/job"
)

func durationFromEnv(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fmt.Fprintf(os.Stderr, "invalid %s=%q: want a positive Go duration such as 1s\n", name, v)
		os.Exit(2)
	}
	return d
}

func main() {
	job.DefaultJobPodFailureBackOff = durationFromEnv("TP_JOB_POD_FAILURE_BACKOFF", time.Second)
	job.MaxJobPodFailureBackOff = durationFromEnv("TP_JOB_POD_FAILURE_BACKOFF_MAX", 2*time.Second)
	if job.MaxJobPodFailureBackOff < job.DefaultJobPodFailureBackOff {
		job.MaxJobPodFailureBackOff = job.DefaultJobPodFailureBackOff
	}

	command := app.NewControllerManagerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
