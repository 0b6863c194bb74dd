"""What the tests share: the one fake of the Kubernetes edge (`fake_kube`)."""
