// pulumi-language-nodejs for this repository: the engine's Node.js language
// host, reduced to what our stacks and policy pack use. The upstream host is
// not on the Go module proxy (its module path is refused), and the one inside
// old sdk/v3 releases predates today's engine, so this one is ours.
//
// It starts @pulumi/pulumi's own entry points with the `node` on $PATH:
// cmd/run for programs (preview, up, refresh, destroy) and cmd/run-policy-pack
// for policy packs (`--policy-pack`). Everything else a language host can do
// (pulumi new, install, convert, package generation) is left unimplemented,
// which the engine reports as such.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// version is stamped by tools/pulumi/build.sh.
var version = "0.0.0-dev"

// userActionableExit is the exit code @pulumi/pulumi's runners use after they
// have already shown the user a readable error.
const userActionableExit = 32

func main() {
	// The engine passes its own address last; runtime options from Pulumi.yaml
	// come as `-name=value` flags before it and are read from ProgramInfo instead.
	args := os.Args[1:]
	engine := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		engine = args[len(args)-1]
	}
	node, err := exec.LookPath("node")
	if err != nil {
		fatal(fmt.Errorf("node is not on $PATH: %w", err))
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, &host{node: node, engine: engine})
			return nil
		},
	})
	if err != nil {
		fatal(fmt.Errorf("could not start the language host: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
	os.Exit(1)
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	node   string
	engine string
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPlugins lists the resource plugins of the packages the program
// can import: those whose package.json says `"pulumi": {"resource": true}`.
func (h *host) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetProgram() //nolint:staticcheck // older engines send only this
	}
	modules, err := nodeModulesDir(dir)
	if err != nil {
		return nil, err
	}
	plugins, err := resourcePlugins(modules)
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, err
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, errors.New("the engine sent no program info; this host needs pulumi >= 3.100")
	}
	modules, err := nodeModulesDir(info.GetProgramDirectory())
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(nonNil(req.GetConfigSecretKeys()))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, h.node, runArgs(req, h.engine, filepath.Join(modules, "@pulumi/pulumi/cmd/run"))...)
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Env = append(cmd.Env, optionEnv(info.GetOptions())...)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exit) && exit.ExitCode() == userActionableExit:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exit):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run node: %v", err)}, nil
	}
}

// runArgs is cmd/run's command line (its usage text lists the flags).
func runArgs(req *pulumirpc.RunRequest, engine, runPath string) []string {
	info := req.GetInfo()
	args := []string{runPath}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name+"="+value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", engine)
	flag("organization", req.GetOrganization())
	flag("project", req.GetProject())
	flag("stack", req.GetStack())
	flag("root-directory", info.GetRootDirectory())
	flag("pwd", req.GetPwd())
	if req.GetParallel() > 0 {
		flag("parallel", fmt.Sprint(req.GetParallel()))
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	args = append(args, filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint()))
	return append(args, req.GetArgs()...)
}

// optionEnv turns Pulumi.yaml's runtime options into the variables cmd/run reads.
func optionEnv(options *structpb.Struct) []string {
	typescript := "true"
	var env []string
	for name, value := range options.GetFields() {
		switch name {
		case "typescript":
			typescript = fmt.Sprint(value.GetBoolValue())
		case "tsconfig":
			env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+value.GetStringValue())
		}
	}
	return append(env, "PULUMI_NODEJS_TYPESCRIPT="+typescript)
}

// RunPlugin starts a policy pack (kind "analyzer"): run-policy-pack takes the
// engine's address and the pack's directory, and prints the port it serves on.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, stream pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.GetKind() != "analyzer" {
		return fmt.Errorf("this language host runs policy packs only, not %q plugins", req.GetKind())
	}
	dir := req.GetInfo().GetProgramDirectory()
	modules, err := nodeModulesDir(dir)
	if err != nil {
		return err
	}
	args := append([]string{filepath.Join(modules, "@pulumi/pulumi/cmd/run-policy-pack")}, req.GetArgs()...)
	cmd := exec.CommandContext(stream.Context(), h.node, append(args, dir)...)
	// @pulumi/policy reads the pack's version from ./package.json.
	cmd.Dir = dir
	cmd.Env = req.GetEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// gRPC streams allow one sender at a time: both pipes feed one channel.
	lines := make(chan *pulumirpc.RunPluginResponse)
	forward := func(r io.Reader, wrap func([]byte) *pulumirpc.RunPluginResponse, done chan<- struct{}) {
		scanner := bufio.NewScanner(r)
		scanner.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for scanner.Scan() {
			lines <- wrap(append(append([]byte(nil), scanner.Bytes()...), '\n'))
		}
		close(done)
	}
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go forward(stdout, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	}, outDone)
	go forward(stderr, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	}, errDone)
	go func() {
		<-outDone
		<-errDone
		close(lines)
	}()
	var sendErr error
	for line := range lines {
		if sendErr == nil {
			sendErr = stream.Send(line)
		}
	}
	code := int32(0)
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return err
		}
		code = int32(exit.ExitCode())
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

// nodeModulesDir finds the node_modules Node would resolve @pulumi/pulumi from.
func nodeModulesDir(from string) (string, error) {
	dir, err := filepath.Abs(from)
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "node_modules")
		if _, err := os.Stat(filepath.Join(candidate, "@pulumi", "pulumi", "package.json")); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("@pulumi/pulumi is not installed in %s or above it: run npm ci", from)
		}
		dir = parent
	}
}

type packageJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Pulumi  struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

// resourcePlugins reads node_modules/<pkg>/package.json and node_modules/@scope/<pkg>/package.json.
func resourcePlugins(modules string) ([]*pulumirpc.PluginDependency, error) {
	manifests, err := filepath.Glob(filepath.Join(modules, "*", "package.json"))
	if err != nil {
		return nil, err
	}
	scoped, err := filepath.Glob(filepath.Join(modules, "@*", "*", "package.json"))
	if err != nil {
		return nil, err
	}
	var plugins []*pulumirpc.PluginDependency
	for _, path := range append(manifests, scoped...) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var pkg packageJSON
		if err := json.Unmarshal(data, &pkg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !pkg.Pulumi.Resource {
			continue
		}
		name, pluginVersion := pkg.Pulumi.Name, pkg.Pulumi.Version
		if name == "" {
			name = strings.TrimPrefix(strings.TrimPrefix(pkg.Name, "@pulumi/"), "@")
		}
		if pluginVersion == "" {
			pluginVersion = pkg.Version
		}
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: name, Kind: "resource", Version: "v" + strings.TrimPrefix(pluginVersion, "v"), Server: pkg.Pulumi.Server,
		})
	}
	return plugins, nil
}

func nonNil(keys []string) []string {
	if keys == nil {
		return []string{}
	}
	return keys
}
