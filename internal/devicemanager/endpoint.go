package devicemanager

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// maxPluginMessage lets a plugin report far more devices than gRPC's 4 MiB
// default allows (the kubelet breaks at about 68,000 devices).
const maxPluginMessage = 256 << 20

// endpoint is a connection to one registered plugin.
type endpoint struct {
	resource string
	socket   string
	options  *pluginapi.DevicePluginOptions
	conn     *grpc.ClientConn
	client   pluginapi.DevicePluginClient
	// stop ends this endpoint's ListAndWatch loop.
	stop context.CancelFunc
	ctx  context.Context
}

// dial connects to a plugin's socket and asks its options, within timeout.
func dial(ctx context.Context, resource, socket string, timeout time.Duration) (*endpoint, error) {
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxPluginMessage)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial plugin %s: %w", socket, err)
	}
	client := pluginapi.NewDevicePluginClient(conn)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	opts, err := client.GetDevicePluginOptions(cctx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("GetDevicePluginOptions from %s: %w", socket, err)
	}
	ectx, stop := context.WithCancel(context.Background())
	return &endpoint{resource: resource, socket: socket, options: opts, conn: conn, client: client, ctx: ectx, stop: stop}, nil
}

func (e *endpoint) close() {
	e.stop()
	e.conn.Close()
}
