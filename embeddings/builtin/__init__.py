"""Arp's builtin contrastive image+spectrum pair: preprocessing, training and evaluation."""
