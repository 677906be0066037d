import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { LABEL, TRAINING_JOB_APP } from "../labels.ts";

/** A peer inside the cluster: pods with these labels in that namespace, on that port. */
export interface ClusterPeer {
  readonly namespace: string;
  readonly podLabels: Readonly<Record<string, string>>;
  readonly port: number;
}

export interface TrainerNetworkPolicyProps {
  readonly namespace: string;
  /** The platform backend that receives TrainingLogger calls. */
  readonly backend: ClusterPeer;
  /** The MLflow tracking server. */
  readonly mlflow: ClusterPeer;
  /**
   * Where the object store lives. R2 and S3 publish no stable ranges, so the
   * default is the public internet on 443 (private ranges and link-local,
   * which holds the cloud metadata endpoint, excluded).
   * @default [{ cidr: "0.0.0.0/0", except: [private ranges, 169.254.0.0/16] }]
   */
  readonly objectStore?: readonly k8s.IpBlock[];
}

const PUBLIC_INTERNET: k8s.IpBlock = {
  cidr: "0.0.0.0/0",
  except: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"],
};

const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

function toPeer(peer: ClusterPeer): k8s.NetworkPolicyEgressRule {
  return {
    to: [
      {
        namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: peer.namespace } },
        podSelector: { matchLabels: { ...peer.podLabels } },
      },
    ],
    ports: [{ protocol: "TCP", port: k8s.IntOrString.fromNumber(peer.port) }],
  };
}

/** Trainer pods take no connections and reach only DNS, the object store, the backend and MLflow. */
export class TrainerNetworkPolicy extends Construct {
  constructor(scope: Construct, id: string, props: TrainerNetworkPolicyProps) {
    super(scope, id);
    new k8s.KubeNetworkPolicy(this, "Resource", {
      metadata: { name: "training-job-egress", namespace: props.namespace },
      spec: {
        podSelector: { matchLabels: { [LABEL.app]: TRAINING_JOB_APP } },
        policyTypes: ["Ingress", "Egress"],
        egress: [
          {
            to: [
              {
                namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: "kube-system" } },
                podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
              },
            ],
            ports: [
              { protocol: "UDP", port: k8s.IntOrString.fromNumber(53) },
              { protocol: "TCP", port: k8s.IntOrString.fromNumber(53) },
            ],
          },
          {
            to: (props.objectStore ?? [PUBLIC_INTERNET]).map((ipBlock) => ({ ipBlock })),
            ports: [{ protocol: "TCP", port: k8s.IntOrString.fromNumber(443) }],
          },
          toPeer(props.backend),
          toPeer(props.mlflow),
        ],
      },
    });
  }
}
