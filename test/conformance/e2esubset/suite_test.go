//go:build knode_e2e_subset

// Package e2esubset is CI's small Kubernetes e2e test binary: the same
// framework and spec packages as upstream's e2e.test, but only the two that
// hold the CI subset's specs (test/e2e/common/node and common/storage),
// which halves the packages the binary compiles beyond kube-apiserver's.
//
// It is not part of knode's module: it imports k8s.io/kubernetes, whose
// staging modules need one replace directive each, and pulling that into
// knode's go.mod would tie knode's k8s.io/* versions to the whole of
// Kubernetes. hack/setup-conformance.sh copies this file into the scratch
// module it builds the other Kubernetes binaries in and builds it with
// `go test -c -tags knode_e2e_subset`; the build tag keeps knode's own
// `go vet ./...` and `go test ./...` away from it.
//
// What it runs is upstream's RunE2ETests without the suite-wide setup that
// waits for kube-system pods and daemon sets (this cluster has none): flags,
// the framework's configuration, the fail handler, the Ginkgo run. The
// flags are e2e.test's, Ginkgo's included (-ginkgo.focus, -ginkgo.junit-report).
package e2esubset

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	utilnet "k8s.io/utils/net"

	// The spec packages of the subset.
	_ "k8s.io/kubernetes/test/e2e/common/node"
	_ "k8s.io/kubernetes/test/e2e/common/storage"
)

func TestMain(m *testing.M) {
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
	framework.AfterReadingAllFlags(&framework.TestContext)
	os.Exit(m.Run())
}

// As upstream's setupSuitePerGinkgoNode: some specs adapt to the cluster's
// IP family.
var _ = ginkgo.BeforeSuite(func(ctx context.Context) {
	c, err := framework.LoadClientset()
	framework.ExpectNoError(err, "load client")
	svc, err := c.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	framework.ExpectNoError(err, "the kubernetes service")
	framework.TestContext.IPFamily = "ipv4"
	if utilnet.IsIPv6String(svc.Spec.ClusterIP) {
		framework.TestContext.IPFamily = "ipv6"
	}
})

func TestE2ESubset(t *testing.T) {
	logs.InitLogs()
	defer logs.FlushLogs()
	klog.EnableContextualLogging(true)
	gomega.RegisterFailHandler(framework.Fail)
	suiteConfig, reporterConfig := framework.CreateGinkgoConfig()
	ginkgo.RunSpecs(t, "knode e2e conformance subset", suiteConfig, reporterConfig)
}
