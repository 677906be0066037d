package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestRunArgsAreCmdRunsFlagsThenTheProgram(t *testing.T) {
	req := &pulumirpc.RunRequest{
		MonitorAddress: "127.0.0.1:1", Organization: "org", Project: "proj", Stack: "dev", Pwd: "/repo/infra",
		Parallel: 8, DryRun: true, Args: []string{"extra"},
		Info: &pulumirpc.ProgramInfo{RootDirectory: "/repo/stacks", ProgramDirectory: "/repo/infra", EntryPoint: "."},
	}
	got := runArgs(req, "127.0.0.1:2", "/repo/node_modules/@pulumi/pulumi/cmd/run")
	want := []string{
		"/repo/node_modules/@pulumi/pulumi/cmd/run",
		"--monitor=127.0.0.1:1", "--engine=127.0.0.1:2", "--organization=org", "--project=proj", "--stack=dev",
		"--root-directory=/repo/stacks", "--pwd=/repo/infra", "--parallel=8", "--dry-run", "/repo/infra", "extra",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("runArgs:\n got %q\nwant %q", got, want)
	}
}

func TestOptionEnvHonoursTypescriptFalse(t *testing.T) {
	options, err := structpb.NewStruct(map[string]any{"typescript": false, "tsconfig": "tsconfig.pulumi.json"})
	if err != nil {
		t.Fatal(err)
	}
	got := optionEnv(options)
	want := []string{"PULUMI_NODEJS_TSCONFIG_PATH=tsconfig.pulumi.json", "PULUMI_NODEJS_TYPESCRIPT=false"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("optionEnv: got %q, want %q", got, want)
	}
	if got := optionEnv(nil); !reflect.DeepEqual(got, []string{"PULUMI_NODEJS_TYPESCRIPT=true"}) {
		t.Fatalf("optionEnv(nil): got %q", got)
	}
}

func TestRequiredPluginsAreTheResourcePackagesFoundAboveTheProgram(t *testing.T) {
	root := t.TempDir()
	write := func(path, content string) {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("node_modules/@pulumi/pulumi/package.json", `{"name":"@pulumi/pulumi","version":"3.276.0"}`)
	write("node_modules/@pulumi/kubernetes/package.json", `{"name":"@pulumi/kubernetes","version":"4.25.0","pulumi":{"resource":true}}`)
	write("node_modules/yaml/package.json", `{"name":"yaml","version":"2.9.1"}`)
	write("node_modules/@acme/thing/package.json", `{"name":"@acme/thing","version":"1.0.0","pulumi":{"resource":true,"name":"acme","version":"2.0.0"}}`)
	if err := os.MkdirAll(filepath.Join(root, "infra"), 0o755); err != nil {
		t.Fatal(err)
	}

	modules, err := nodeModulesDir(filepath.Join(root, "infra"))
	if err != nil || modules != filepath.Join(root, "node_modules") {
		t.Fatalf("nodeModulesDir: %q, %v", modules, err)
	}
	plugins, err := resourcePlugins(modules)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, plugin := range plugins {
		got[plugin.GetName()] = plugin.GetVersion()
	}
	if want := map[string]string{"kubernetes": "v4.25.0", "acme": "v2.0.0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("resourcePlugins: got %v, want %v", got, want)
	}
	if _, err := nodeModulesDir(t.TempDir()); err == nil {
		t.Fatal("nodeModulesDir found @pulumi/pulumi where none is installed")
	}
}
