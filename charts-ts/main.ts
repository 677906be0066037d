// cdk8s.yaml's app: `cdk8s synth` runs this with CDK8S_OUTDIR set.
import { platformApp } from "./app.ts";

platformApp().synth();
