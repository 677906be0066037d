import * as pulumi from "@pulumi/pulumi";

export interface ExecKubeconfigArgs {
  readonly name: pulumi.Input<string>;
  readonly server: pulumi.Input<string>;
  /** Base64 PEM of the cluster CA. */
  readonly certificateAuthorityData: pulumi.Input<string>;
  /** A client-go credential plugin: the kubeconfig holds no token, the plugin mints short-lived ones. */
  readonly exec: { readonly command: string; readonly args: pulumi.Input<string>[] };
}

/**
 * A kubeconfig (JSON, which kubeconfig parsers accept) for a new cluster. It
 * holds no credential, yet names the endpoint and CA: kept secret all the same.
 */
export function execKubeconfig(args: ExecKubeconfigArgs): pulumi.Output<string> {
  const kubeconfig = pulumi
    .all([args.name, args.server, args.certificateAuthorityData, pulumi.output(args.exec.args)])
    .apply(([name, server, certificateAuthorityData, execArgs]) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name, cluster: { server, "certificate-authority-data": certificateAuthorityData } }],
        users: [
          {
            name,
            user: {
              exec: {
                apiVersion: "client.authentication.k8s.io/v1beta1",
                command: args.exec.command,
                args: execArgs,
                interactiveMode: "Never",
                provideClusterInfo: true,
              },
            },
          },
        ],
        contexts: [{ name, context: { cluster: name, user: name } }],
        "current-context": name,
      }),
    );
  return pulumi.secret(kubeconfig);
}
