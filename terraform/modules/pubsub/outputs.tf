output "topic_name" {
  description = "The topic batches are published to."
  value       = google_pubsub_topic.batches.name
}

output "topic_id" {
  description = "The batches topic's full id."
  value       = google_pubsub_topic.batches.id
}

output "push_subscription_name" {
  description = "The push subscription that delivers batches to the batch function."
  value       = google_pubsub_subscription.batch_push.name
}

output "dead_letter_topic_name" {
  description = "Where undeliverable batches go."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription_name" {
  description = "The subscription holding dead-lettered batches for inspection."
  value       = google_pubsub_subscription.dead_letter.name
}

output "push_service_account_name" {
  description = "The push identity's resource name (projects/P/serviceAccounts/EMAIL), for IAM on the account."
  value       = google_service_account.push.name
}
