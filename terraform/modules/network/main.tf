# The VPC the functions reach Cloud SQL and Memorystore through: one subnet for
# Direct VPC egress, and a private services access range shared by Cloud SQL,
# Memorystore and the Cloud Build private pool (all three peer through
# servicenetworking, so the pool reaches the database's private IP).

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "functions" {
  project = var.project_id
  name    = "${var.name}-functions"
  region  = var.region
  network = google_compute_network.this.id
  # Direct VPC egress takes addresses from this range as instances start:
  # https://cloud.google.com/run/docs/configuring/vpc-direct-vpc#ip-address-allocation
  ip_cidr_range            = var.functions_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "services" {
  project       = var.project_id
  name          = "${var.name}-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.services_prefix_length
  network       = google_compute_network.this.id
}

resource "google_service_networking_connection" "services" {
  network                 = google_compute_network.this.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.services.name]
}

# Nothing may open connections into the VPC: the functions only connect out
# (to Cloud SQL and Memorystore, whose answers are allowed as replies). Stated
# explicitly, and logged, rather than left to the implied rule.
resource "google_compute_firewall" "deny_ingress" {
  project   = var.project_id
  name      = "${var.name}-deny-all-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
