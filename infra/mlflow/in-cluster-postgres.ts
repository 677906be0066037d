import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { SECRET_CHECKSUM_ANNOTATION, secretChecksum } from "../secret-checksum.ts";

/** The official image; the tag is pinned like every chart. */
const POSTGRES_IMAGE = "docker.io/library/postgres:16.6-bookworm";
/** The image's postgres user. */
const POSTGRES_UID = 999;
const PORT = 5432;
const SOCKET_DIR = "/var/run/postgresql";

/**
 * POSTGRES_PASSWORD only initialises an empty data directory; this sets the
 * user's password from the Secret on every start, so a rotated password (which
 * rolls the pod) reaches the database too. Over the local socket, which the
 * image trusts; the password goes through a psql variable, never a command line.
 */
const SYNC_PASSWORD_SCRIPT =
  `until pg_isready -q -h ${SOCKET_DIR}; do sleep 1; done; ` +
  `echo "ALTER ROLE :\\"user\\" WITH PASSWORD :'password';" | ` +
  `psql -v ON_ERROR_STOP=1 -v user="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" -h ${SOCKET_DIR} -U "$POSTGRES_USER" -d "$POSTGRES_DB"`;

export interface InClusterPostgresArgs {
  readonly namespace: string;
  readonly database: string;
  /** Volume size. */
  readonly storageGi: number;
  /** @default the cluster's default StorageClass */
  readonly storageClassName?: string;
  /** How long `up` waits for the pod to become ready. */
  readonly readyTimeoutSeconds: number;
  /** The password in that Secret: a change rolls the pod, which then sets it in the database. */
  readonly password: pulumi.Input<string>;
  /** Secret holding the user name and password the database is initialised with. */
  readonly credentials: { readonly secretName: pulumi.Input<string>; readonly usernameKey: string; readonly passwordKey: string };
}

/**
 * One Postgres pod with a volume, for clusters without a managed database (the
 * `local` stack): no replicas, no backups. Meets the restricted pod security profile.
 */
export class InClusterPostgres extends pulumi.ComponentResource {
  readonly host: pulumi.Output<string>;
  readonly port: number = PORT;

  constructor(name: string, args: InClusterPostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:mlflow:InClusterPostgres", name, {}, opts);
    const labels = { "app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": name };
    const service = new k8s.core.v1.Service(
      name,
      {
        metadata: { name: "postgres", namespace: args.namespace, labels },
        spec: { selector: labels, ports: [{ name: "postgres", port: PORT, targetPort: "postgres" }] },
      },
      { parent: this },
    );
    const fromSecret = (key: string) => ({ secretKeyRef: { name: args.credentials.secretName, key } });
    new k8s.apps.v1.StatefulSet(
      name,
      {
        metadata: { name: "postgres", namespace: args.namespace, labels },
        spec: {
          serviceName: service.metadata.name,
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels, annotations: { [SECRET_CHECKSUM_ANNOTATION]: secretChecksum([args.password]) } },
            spec: {
              securityContext: {
                runAsNonRoot: true,
                runAsUser: POSTGRES_UID,
                runAsGroup: POSTGRES_UID,
                fsGroup: POSTGRES_UID,
                seccompProfile: { type: "RuntimeDefault" },
              },
              containers: [
                {
                  name: "postgres",
                  image: POSTGRES_IMAGE,
                  ports: [{ name: "postgres", containerPort: PORT }],
                  env: [
                    { name: "POSTGRES_DB", value: args.database },
                    { name: "POSTGRES_USER", valueFrom: fromSecret(args.credentials.usernameKey) },
                    { name: "POSTGRES_PASSWORD", valueFrom: fromSecret(args.credentials.passwordKey) },
                    // A subdirectory: the volume's root holds lost+found, which initdb refuses.
                    { name: "PGDATA", value: "/var/lib/postgresql/data/pgdata" },
                  ],
                  lifecycle: { postStart: { exec: { command: ["sh", "-c", SYNC_PASSWORD_SCRIPT] } } },
                  readinessProbe: { exec: { command: ["pg_isready", "-h", "127.0.0.1", "-p", String(PORT)] }, periodSeconds: 10 },
                  resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { memory: "1Gi" } },
                  securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
                  volumeMounts: [
                    { name: "data", mountPath: "/var/lib/postgresql/data" },
                    { name: "run", mountPath: SOCKET_DIR },
                    { name: "tmp", mountPath: "/tmp" },
                  ],
                },
              ],
              volumes: [
                { name: "run", emptyDir: {} },
                { name: "tmp", emptyDir: {} },
              ],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: "data" },
              spec: {
                accessModes: ["ReadWriteOnce"],
                ...(args.storageClassName !== undefined && { storageClassName: args.storageClassName }),
                resources: { requests: { storage: `${args.storageGi}Gi` } },
              },
            },
          ],
        },
      },
      {
        parent: this,
        customTimeouts: { create: `${args.readyTimeoutSeconds}s`, update: `${args.readyTimeoutSeconds}s` },
      },
    );
    this.host = pulumi.interpolate`${service.metadata.name}.${args.namespace}.svc.cluster.local`;
    this.registerOutputs({ host: this.host });
  }
}
